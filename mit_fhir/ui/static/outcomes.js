/* The psychiatrist's view: a chart per instrument (cutoff band, change categories as colour AND
   shape), the medication timeline on the same time axis, and every number again as a table. */
"use strict";
(function () {
  const CATEGORIES = {
    baseline:     { label: "baseline",     colour: "#24292f", shape: "rect" },
    recovered:    { label: "recovered",    colour: "#1a7f37", shape: "circle" },
    improved:     { label: "improved",     colour: "#0550ae", shape: "triangle" },
    unchanged:    { label: "unchanged",    colour: "#57606a", shape: "rectRot" },
    deteriorated: { label: "deteriorated", colour: "#9a4700", shape: "crossRot" },
    harmed:       { label: "harmed",       colour: "#cf222e", shape: "cross" },
    none:         { label: "no change computed", colour: "#6e7781", shape: "rectRounded" },
  };
  const SOURCES = { ehr: { label: "EHR", colour: "#0550ae" }, "mit-plan": { label: "MIT plan", colour: "#8250df" } };
  const AXIS_WIDTH = 150;  // every chart's y axis is this wide, so the time axes line up
  const fixedWidth = (scale) => { scale.width = AXIS_WIDTH; };
  // Writes each period's dose inside its bar (when it fits): dose changes read at a glance.
  const doseLabels = {
    id: "doseLabels",
    afterDatasetsDraw(chart) {
      const { ctx } = chart;
      ctx.save();
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = "#ffffff";
      ctx.textBaseline = "middle";
      chart.data.datasets.forEach((dataset, i) => {
        chart.getDatasetMeta(i).data.forEach((bar, j) => {
          const text = dataset.data[j].period.dose || "";
          const left = Math.min(bar.x, bar.base);
          const width = Math.abs(bar.x - bar.base);
          // The whole dose, else its first two words ("25 mg"), else nothing.
          const fits = [text, text.split(" ").slice(0, 2).join(" ")]
            .find((t) => t && ctx.measureText(t).width + 8 < width);
          if (fits) ctx.fillText(fits, left + 4, bar.y);
        });
      });
      ctx.restore();
    },
  };
  const root = document.getElementById("outcomes");
  const status = document.getElementById("status");
  const charts = {};
  window.mitFhirCharts = charts;

  const day = (iso) => (iso ? String(iso).slice(0, 10) : "");
  const categoryOf = (p) => CATEGORIES[p.category] ? p.category : "none";

  function timeRange(doc) {
    const times = [];
    for (const ins of doc.instruments) for (const p of ins.points) times.push(Date.parse(p.date));
    for (const med of doc.medications) for (const p of med.periods) {
      if (p.start) times.push(Date.parse(p.start));
      times.push(p.stop ? Date.parse(p.stop) : Date.now());
    }
    const ok = times.filter((t) => !Number.isNaN(t));
    if (!ok.length) return {};
    const pad = 15 * 86400000;
    return { min: Math.min(...ok) - pad, max: Math.max(...ok) + pad };
  }

  function element(tag, attrs, text) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function scoreChart(ins, index, range) {
    const id = "instrument-" + index;
    const section = element("section", { "aria-labelledby": id + "-title", class: "instrument", "data-code": ins.code });
    section.appendChild(element("h2", { id: id + "-title" }, ins.display + " (" + ins.questionnaire + ")"));
    const lower = ins.direction !== "higher-is-better";
    const cutoff = (ins.cutoffs || [])[0];
    if (cutoff) {
      section.appendChild(element("p", { class: "note" },
        "Shaded: the clinical range (" + (lower ? "at or above " : "at or below ") +
        "the " + (cutoff.label || "cutoff") + ", " + Number(cutoff.value).toFixed(1) + "). " + (lower ? "Lower" : "Higher") + " is better."));
    }
    const box = element("div", { class: "chart" });
    const canvas = element("canvas", { id: id + "-chart", role: "img",
      "aria-label": ins.display + " over time; the table below gives the same numbers" });
    box.appendChild(canvas);
    section.appendChild(box);
    section.appendChild(scoreTable(ins, id));
    root.appendChild(section);

    const values = ins.points.map((p) => p.value);
    const highest = Math.max(...values, cutoff ? cutoff.value : 0);
    const step = highest > 20 ? 10 : highest > 5 ? 1 : 0.5;
    const top = Math.ceil((highest * 1.1) / step) * step;
    const bottom = ins.range && ins.range[0] !== undefined ? ins.range[0] : 0;
    const groups = new Map();
    for (const p of ins.points) {
      const key = categoryOf(p) + (p.synthetic ? "|synthetic" : "");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push({ x: Date.parse(p.date), y: p.value, point: p });
    }
    const datasets = [{
      type: "line", label: ins.display, data: ins.points.map((p) => ({ x: Date.parse(p.date), y: p.value })),
      borderColor: "#6e7781", borderWidth: 1.5, pointRadius: 0, pointHitRadius: 0, order: 2,
    }];
    for (const [key, data] of groups) {
      const [category, synthetic] = key.split("|");
      const style = CATEGORIES[category];
      datasets.push({
        type: "scatter", label: style.label + (synthetic ? " (synthetic)" : ""), data,
        pointStyle: style.shape, pointRadius: 7, pointHoverRadius: 9, borderWidth: 2,
        borderColor: style.colour, backgroundColor: synthetic ? "#ffffff" : style.colour, order: 1,
      });
    }
    const annotations = {};
    if (cutoff) {
      annotations.band = lower
        ? { type: "box", yMin: cutoff.value, yMax: top, backgroundColor: "rgba(207,34,46,0.08)", borderWidth: 0 }
        : { type: "box", yMin: bottom, yMax: cutoff.value, backgroundColor: "rgba(207,34,46,0.08)", borderWidth: 0 };
      annotations.cutoff = { type: "line", yMin: cutoff.value, yMax: cutoff.value, borderColor: "#cf222e",
        borderDash: [6, 4], borderWidth: 1.5,
        label: { display: true, content: (cutoff.label || "clinical cutoff") + " " + Number(cutoff.value).toFixed(1), position: "end",
                 backgroundColor: "#ffffff", color: "#a40e26", font: { size: 11 } } };
    }
    charts[ins.code] = new Chart(canvas, {
      data: { datasets },
      options: {
        animation: false, maintainAspectRatio: false,
        scales: {
          x: { type: "time", min: range.min, max: range.max, title: { display: true, text: "date" } },
          y: { min: bottom, max: top, title: { display: true, text: "score" }, afterFit: fixedWidth },
        },
        plugins: {
          annotation: { annotations },
          legend: { labels: { usePointStyle: true, color: "#24292f" } },
          tooltip: { callbacks: { label: (item) => {
            const p = item.raw.point;
            if (!p) return "";
            return day(p.date) + ": " + p.value + " — " + CATEGORIES[categoryOf(p)].label +
              (p.reliable ? ", reliable change" : "") + (p.synthetic ? " (synthetic)" : "");
          } } },
        },
      },
    });
  }

  function scoreTable(ins, id) {
    const table = element("table", { class: "numbers", id: id + "-table" });
    table.appendChild(element("caption", {}, ins.display + ": every assessment"));
    const head = element("thead");
    const hr = element("tr");
    for (const h of ["Date", "Score", "Change category", "Reliable", "RCI", "Data"]) hr.appendChild(element("th", { scope: "col" }, h));
    head.appendChild(hr);
    table.appendChild(head);
    const body = element("tbody");
    for (const p of ins.points) {
      const row = element("tr", { "data-observation": p.observation || "" });
      mitFhir.cell(row, day(p.date), true);
      mitFhir.cell(row, p.value);
      mitFhir.cell(row, CATEGORIES[categoryOf(p)].label + (p.band ? " · " + p.band : "")).className = "category cat-" + categoryOf(p);
      mitFhir.cell(row, p.reliable === null || p.reliable === undefined ? "" : (p.reliable ? "yes" : "no"));
      mitFhir.cell(row, p.index === null || p.index === undefined ? "" : Number(p.index).toFixed(2));
      mitFhir.cell(row, p.synthetic ? "synthetic" : "recorded");
      body.appendChild(row);
    }
    table.appendChild(body);
    return table;
  }

  function medicationChart(doc, range) {
    const section = document.getElementById("medications");
    section.hidden = false;
    const note = document.getElementById("meds-note");
    note.textContent = doc.ehrError ? "Note: " + doc.ehrError + "." :
      (doc.medications.length ? "" : "No medication recorded in the EHR or the MIT plan.");
    const labels = doc.medications.map((m) => m.display + " · " + (SOURCES[m.source] ? SOURCES[m.source].label : m.source));
    const bySource = {};
    doc.medications.forEach((m, i) => {
      for (const p of m.periods) {
        const src = m.source in SOURCES ? m.source : "ehr";
        (bySource[src] = bySource[src] || []).push({
          x: [Date.parse(p.start), p.stop ? Date.parse(p.stop) : range.max], y: labels[i], period: p, drug: m.display });
      }
    });
    const datasets = Object.entries(bySource).map(([src, data]) => ({
      label: SOURCES[src].label, data, backgroundColor: SOURCES[src].colour, borderColor: "#ffffff",
      borderWidth: 2, borderSkipped: false, barPercentage: 0.9, categoryPercentage: 0.9, grouped: false,
    }));
    const canvas = document.getElementById("meds-chart");
    canvas.parentElement.style.height = (80 + 48 * Math.max(1, labels.length)) + "px";
    canvas.setAttribute("aria-label", "Medication timeline: " + (labels.join("; ") || "none") + ". The table below gives the periods.");
    charts.medications = new Chart(canvas, {
      type: "bar", data: { labels, datasets }, plugins: [doseLabels],
      options: {
        indexAxis: "y", animation: false, maintainAspectRatio: false,
        scales: { x: { type: "time", min: range.min, max: range.max },
                  y: { ticks: { color: "#24292f" }, afterFit: fixedWidth } },
        plugins: { legend: { labels: { color: "#24292f" } }, tooltip: { callbacks: { label: (item) => {
          const p = item.raw.period;
          return item.raw.drug + ": " + (p.dose || "dose not given") + ", " + day(p.start) + " – " + (day(p.stop) || "ongoing") + " (" + p.status + ")" + (p.synthetic ? " (synthetic)" : "");
        } } } },
      },
    });
    const body = document.getElementById("meds-rows");
    doc.medications.forEach((m) => {
      for (const p of m.periods) {
        const row = element("tr", { "data-drug": m.code || m.display });
        mitFhir.cell(row, m.display, true);
        mitFhir.cell(row, p.dose + (p.synthetic ? " (synthetic)" : ""));
        mitFhir.cell(row, day(p.start));
        mitFhir.cell(row, day(p.stop) || "ongoing");
        mitFhir.cell(row, p.status);
        mitFhir.cell(row, SOURCES[m.source] ? SOURCES[m.source].label : m.source);
        body.appendChild(row);
      }
    });
  }

  async function load() {
    const doc = await mitFhir.request("GET", root.dataset.source);
    const range = timeRange(doc);
    doc.instruments.forEach((ins, i) => scoreChart(ins, i, range));
    medicationChart(doc, range);
    status.textContent = doc.instruments.length
      ? "Instruments charted: " + doc.instruments.length + "."
      : "No scores recorded yet for this patient.";
    root.dataset.ready = "true";
  }

  load().catch((err) => { status.textContent = "The outcomes could not be loaded: " + err.message; });
})();
