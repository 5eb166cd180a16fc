/* Chart labels that never cover a data point: the clinical range's label beside its line and
   each band's name inside its band go to the first place, left to right, where they hide no
   assessment (on a phone the plot is too narrow for fixed positions). Placed boxes are kept on
   the chart as chart.$placedLabels so the page's tests can read the drawn geometry. And each
   medication period's dose written inside its bar. */
"use strict";
(function () {
  const FONT = "11px system-ui, sans-serif";
  const HEIGHT = 15;  // 11px text and its padding
  const GAP = 3;      // kept clear around every point

  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  // Every drawn point as a box: its radius (the alert triangle is larger) plus a small gap.
  function pointBoxes(chart) {
    const boxes = [];
    chart.data.datasets.forEach((dataset, i) => {
      const meta = chart.getDatasetMeta(i);
      if (meta.hidden || dataset.type !== "scatter") return;
      for (const el of meta.data) {
        const r = (el.options.radius || 0) + (el.options.borderWidth || 0) / 2 + GAP;
        boxes.push({ x: el.x - r, y: el.y - r, w: 2 * r, h: 2 * r });
      }
    });
    return boxes;
  }

  // Candidate boxes for one label: for a line, just above then just below it; for a band,
  // along its top inside the band, then along its bottom; each row scanned left to right.
  function candidates(chart, label, width) {
    const area = chart.chartArea;
    const y = chart.scales.y;
    const rows = [];
    if (label.kind === "line") {
      const at = y.getPixelForValue(label.value);
      rows.push(at - HEIGHT - 1, at + 1);
    } else {
      const top = y.getPixelForValue(Math.min(label.to, y.max));
      const bottom = y.getPixelForValue(Math.max(label.from, y.min));
      if (bottom - top < HEIGHT + 2) return [];
      rows.push(top + 1, bottom - HEIGHT - 1);
    }
    const out = [];
    for (const row of rows) {
      if (row < area.top || row + HEIGHT > area.bottom) continue;
      for (let x = area.left + 4; x + width <= area.right - 2; x += 6) out.push({ x, y: row, w: width, h: HEIGHT });
    }
    return out;
  }

  const placedLabels = {
    id: "placedLabels",
    afterDatasetsDraw(chart, _args, options) {
      const { ctx } = chart;
      const taken = pointBoxes(chart);
      const placed = [];
      ctx.save();
      ctx.font = FONT;
      ctx.textBaseline = "middle";
      for (const label of options.labels || []) {
        // The whole wording, else its short form ("106 and above") where the plot is narrow.
        let spot, text;
        for (text of [label.text, label.short].filter(Boolean)) {
          const width = Math.ceil(ctx.measureText(text).width) + 8;
          spot = candidates(chart, label, width).find((box) => !taken.some((t) => overlaps(box, t)));
          if (spot) break;
        }
        if (!spot) continue;  // no free place: the note above the chart gives the same words
        taken.push(spot);
        placed.push({ text, kind: label.kind, ...spot });
        ctx.fillStyle = "rgba(255,255,255,0.85)";
        ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
        ctx.fillStyle = label.colour;
        ctx.fillText(text, spot.x + 4, spot.y + HEIGHT / 2);
      }
      ctx.restore();
      chart.$placedLabels = placed;
    },
  };

  // Writes each period's dose inside its bar (when it fits): dose changes read at a glance.
  const doseLabels = {
    id: "doseLabels",
    afterDatasetsDraw(chart) {
      const { ctx } = chart;
      ctx.save();
      ctx.font = "12px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      chart.data.datasets.forEach((dataset, i) => {
        chart.getDatasetMeta(i).data.forEach((bar, j) => {
          ctx.fillStyle = dataset.data[j].period.synthetic ? "#24292f" : "#ffffff";
          const text = dataset.data[j].period.dose || "";
          const left = Math.max(Math.min(bar.x, bar.base), chart.chartArea.left);
          const width = Math.min(Math.max(bar.x, bar.base), chart.chartArea.right) - left;
          // The whole dose, else its first two words ("25 mg"), else nothing.
          const fits = [text, text.split(" ").slice(0, 2).join(" ")]
            .find((t) => t && ctx.measureText(t).width + 8 < width);
          if (fits) ctx.fillText(fits, left + 4, bar.y);
          // An ongoing period runs to the chart's edge: say so at its end, not by colour.
          if (!dataset.data[j].period.stop && ctx.measureText("ongoing →").width + 8 < width - (fits ? ctx.measureText(fits).width + 8 : 0)) {
            ctx.textAlign = "right";
            ctx.fillText("ongoing →", left + width - 4, bar.y);
            ctx.textAlign = "left";
          }
        });
      });
      ctx.restore();
    },
  };
  window.mitOutcomes.placedLabels = placedLabels;
  window.mitOutcomes.doseLabels = doseLabels;
})();
