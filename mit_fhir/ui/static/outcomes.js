/* The psychiatrist's view: a chart per instrument (clinical range, bands, change verdicts as
   colour AND shape, risk alerts marked and listed), the medication timeline on the same time
   axis, and every number again as a table (outcomes-tables.js). */
"use strict";
(function () {
  const O = window.mitOutcomes;
  const { CATEGORIES, SOURCES, day, categoryOf, verdict, element } = O;
  const DAY = 86400000;
  // The y axes share one width so the time axes line up; narrower on a phone.
  const axisWidth = () => Math.min(150, Math.round(window.innerWidth * 0.28));
  const fixedWidth = (scale) => { scale.width = axisWidth(); };
  // Room for a point's marker (the alert triangle's 11 px and its border) at both ends of the
  // time axis, in pixels: a day margin is a pixel or two on a phone and cut the last point.
  const EDGE = 14;
  const timeAxis = (range) => ({
    type: "time", min: range.min, max: range.max, time: { minUnit: "month" },
    afterDataLimits(scale) {
      if (range.min === undefined || !(scale.width > 2 * EDGE)) return;
      const perPixel = (range.max - range.min) / (scale.width - 2 * EDGE);
      scale.min = range.min - EDGE * perPixel;
      scale.max = range.max + EDGE * perPixel;
    },
  });
  const ALERT = { critical: { colour: "#a40e26", word: "Critical" }, warning: { colour: "#9a4700", word: "Warning" } };
  const root = document.getElementById("outcomes");
  const status = document.getElementById("status");
  const charts = {};
  window.mitFhirCharts = charts;

  // From the first assessment or plan to the last dated event (timeAxis adds the margins): an
  // ongoing medication has no end, so it does not stretch the axis to today.
  function timeRange(doc) {
    const times = [];
    for (const ins of doc.instruments) for (const p of ins.points) times.push(Date.parse(p.date));
    for (const med of doc.medications) for (const p of med.periods) {
      if (p.start) times.push(Date.parse(p.start));
      if (p.stop) times.push(Date.parse(p.stop));
    }
    const ok = times.filter((t) => !Number.isNaN(t));
    if (!ok.length) return {};
    const min = Math.min(...ok), max = Math.max(...ok);
    return max > min ? { min, max } : { min: min - 15 * DAY, max: max + 15 * DAY };
  }

  function bandAnnotations(ins, top) {
    const out = {};
    ins.bands.forEach((b, k) => {
      out["band" + k] = { type: "box", yMin: b.from, yMax: Math.min(b.to, top), borderWidth: 0,
        backgroundColor: "rgba(154,71,0," + (0.05 * k).toFixed(3) + ")" };
      if (k > 0) out["edge" + k] = { type: "line", yMin: b.from, yMax: b.from, borderColor: "#8c959f", borderWidth: 1 };
    });
    return out;
  }

  function clinicalAnnotations(ins, bottom, top) {
    const c = ins.clinical;
    if (!c) return {};
    const value = Number(c.value);
    const out = {
      line: { type: "line", yMin: value, yMax: value, borderColor: "#cf222e", borderDash: [6, 4], borderWidth: 1.5 },
    };
    if (!ins.bands.length) {
      out.range = { type: "box", yMin: c.above ? value : bottom, yMax: c.above ? top : value,
                    backgroundColor: "rgba(207,34,46,0.08)", borderWidth: 0 };
    }
    return out;
  }

  // A level's name on two lines on a phone ("No risk" / "indicated"): the narrow axis keeps it whole.
  const levelTick = (name) => {
    const words = String(name || "").split(" ");
    if (window.innerWidth >= 600 || words.length < 2) return name || "";
    const half = Math.ceil(words.length / 2);
    return [words.slice(0, half).join(" "), words.slice(half).join(" ")];
  };

  // The words drawn on the chart (placed where they hide no point: outcomes-labels.js).
  const chartLabels = (ins) => [
    ...ins.bands.map((b) => ({ kind: "band", from: b.from, to: b.to, text: b.label, colour: "#57606a" })),
    ...(ins.clinical ? [{ kind: "line", value: Number(ins.clinical.value), text: ins.clinical.text,
                           short: ins.clinical.text.replace(/^clinical range: /, ""), colour: "#a40e26" }] : []),
  ];

  function alertList(ins, id) {
    const flagged = ins.points.filter((p) => (p.alerts || []).length);
    if (!flagged.length) return null;
    const box = element("div", { class: "alerts", id: id + "-alerts" });
    box.appendChild(element("h3", {}, "Risk alerts"));
    const list = element("ul");
    for (const p of flagged) for (const a of p.alerts) {
      const li = element("li", { class: "alert-" + a.level });
      li.appendChild(element("strong", {}, (ALERT[a.level] || ALERT.warning).word + ", " + day(p.date) + ": "));
      li.appendChild(document.createTextNode(a.message + (a.answer ? " (answer: " + a.answer + ")" : "")));
      list.appendChild(li);
    }
    box.appendChild(list);
    return box;
  }

  // The legend as a list under the chart: it wraps on a phone where Chart.js' own legend is
  // clipped, and screen readers read it. Shape AND colour, hollow for synthetic values.
  const SYMBOLS = { rect: "■□", circle: "●○", triangle: "▲△", rectRot: "◆◇", crossRot: "✕✕", cross: "✚✚", rectRounded: "▪▫" };
  function legend(datasets) {
    const list = element("ul", { class: "legend" });
    for (const d of datasets.slice(1)) {
      const li = element("li");
      const hollow = d.backgroundColor !== d.borderColor;
      const mark = element("span", { class: "mark", "aria-hidden": "true" }, (SYMBOLS[d.pointStyle] || "●○")[hollow ? 1 : 0]);
      mark.style.color = d.borderColor;
      li.appendChild(mark);
      li.appendChild(document.createTextNode(" " + d.label));
      list.appendChild(li);
    }
    return list;
  }

  function describe(ins) {
    const parts = [];
    if (ins.clinical) parts.push((ins.bands.length ? "Dashed red line" : "Shaded") + ": the " + ins.clinical.text + ".");
    if (ins.bands.length) parts.push("Bands: " + ins.bands.map((b) => b.display).join("; ") + ".");
    if (ins.levels) parts.push("Levels, as the form itself triages: " + ins.levels.join(", ") + " (least to most severe).");
    else parts.push((ins.direction === "higher-is-better" ? "Higher" : "Lower") + " is better.");
    if (ins.points.some((p) => p.synthetic)) parts.push("Hollow markers are synthetic values.");
    parts.push("The grey line joins the assessments in date order.");
    return parts.join(" ");
  }

  function scoreChart(ins, index, range, doc) {
    const id = "instrument-" + index;
    const section = element("section", { "aria-labelledby": id + "-title", class: "instrument", "data-code": ins.code });
    section.appendChild(element("h2", { id: id + "-title" }, ins.heading));
    const due = O.dueMark(doc, ins);  // outcomes-due.js: overdue, next due, last completion
    if (due) section.appendChild(due);
    section.appendChild(element("p", { class: "note" }, describe(ins)));
    const layout = element("div", { class: "chart-row" });
    const box = element("div", { class: "chart" });
    const canvas = element("canvas", { id: id + "-chart", role: "img",
      "aria-label": ins.display + " over time; the table below gives the same numbers" });
    box.appendChild(canvas);
    layout.appendChild(box);
    const alerts = alertList(ins, id);
    if (alerts) layout.appendChild(alerts);
    section.appendChild(layout);
    section.appendChild(O.scoreTable(ins, id));
    const stats = O.statisticsTable(ins, id);
    if (stats) section.appendChild(stats);
    root.appendChild(section);

    const levels = ins.levels;  // a band-only instrument: named levels instead of a score
    const bottom = levels ? -0.5 : ins.range ? ins.range[0] : 0;
    const highest = Math.max(...ins.points.map((p) => p.value), ins.clinical ? Number(ins.clinical.value) : 0,
                             ...ins.bands.slice(1).map((b) => b.from));
    const step = highest > 20 ? 10 : highest > 5 ? 1 : 0.5;
    // With bands the axis runs to the top of the range, so the most severe band shows whole.
    const top = levels ? levels.length - 0.5 : ins.bands.length && ins.range ? ins.range[1]
      : Math.min(ins.range ? ins.range[1] : Infinity, Math.ceil((highest * 1.1) / step) * step) || step;
    const groups = new Map();
    for (const p of ins.points) {
      const key = categoryOf(p) + "|" + O.origin(p) + "|" + (categoryOf(p) === "none" ? p.bandChange || "" : "");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push({ x: Date.parse(p.date), y: p.value, point: p });
    }
    const datasets = [{
      type: "line", label: "joins the assessments", data: ins.points.map((p) => ({ x: Date.parse(p.date), y: p.value })),
      borderColor: "#6e7781", borderWidth: 1.5, pointRadius: 0, pointHitRadius: 0, order: 3,
    }];
    for (const [key, data] of groups) {
      const [category, source] = key.split("|");
      const style = CATEGORIES[category];
      const synthetic = source === "synthetic";
      const words = category === "none" && data[0].point.bandChange ? data[0].point.bandChange : style.label;
      datasets.push({
        type: "scatter", label: words + " (" + source + ")", data, pointStyle: style.shape,
        pointRadius: 7, pointHoverRadius: 9, borderWidth: 2, borderColor: style.colour,
        backgroundColor: synthetic ? "#ffffff" : style.colour, order: 2, clip: false,
      });
    }
    const flagged = ins.points.filter((p) => (p.alerts || []).length);
    if (flagged.length) {
      datasets.push({
        type: "scatter", label: "risk alert (listed beside the chart)", pointStyle: "triangle", pointRadius: 11,
        borderWidth: 3, borderColor: "#a40e26", backgroundColor: "rgba(255,255,255,0)", order: 1, clip: false,
        data: flagged.map((p) => ({ x: Date.parse(p.date), y: p.value, point: p, alert: true })),
      });
    }
    layout.before(legend(datasets));
    const precision = ins.decimals;
    const wide = window.innerWidth >= 600;  // a phone keeps its width for the plot, not axis titles
    charts[ins.code] = new Chart(canvas, {
      data: { datasets }, plugins: [O.placedLabels],
      options: {
        // A point on the highest value or level keeps its whole marker (clip: false above); no
        // automatic padding for the markers, which would shift this plot off the medication bars'.
        animation: false, maintainAspectRatio: false, layout: { padding: { top: EDGE }, autoPadding: false },
        scales: {
          x: { ...timeAxis(range), title: { display: wide, text: "date" } },
          y: { min: bottom, max: top, title: { display: wide, text: levels ? "level" : "score" }, afterFit: fixedWidth,
               // Named levels: one tick per level at 0, 1, 2 ... (the axis itself runs -0.5 to n-0.5).
               // With bands: ticks at the band edges (0, 5, 10, 15, 20, 27), not a top tick crowding 25.
               afterBuildTicks: levels ? (axis) => { axis.ticks = levels.map((_, i) => ({ value: i })); }
                 : ins.bands.length ? (axis) => { axis.ticks = [bottom, ...ins.bands.slice(1).map((b) => b.from), top]
                   .filter((v, i, all) => all.indexOf(v) === i).map((value) => ({ value })); } : undefined,
               ticks: levels ? { autoSkip: false, callback: (v) => levelTick(levels[v]) } : precision === 0 ? { precision: 0 } : {} },
        },
        plugins: {
          annotation: { annotations: { ...bandAnnotations(ins, top), ...clinicalAnnotations(ins, bottom, top) } },
          placedLabels: { labels: chartLabels(ins) },
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => {
            const p = item.raw.point;
            if (!p) return "";
            if (item.raw.alert) return p.alerts.map((a) => a.level + ": " + a.message).join("; ");
            return day(p.date) + ": " + p.text + " — " + verdict(p) + (p.band ? " · " + p.band : "") + " (" + O.origin(p) + ")";
          } } },
        },
      },
    });
  }

  function medicationChart(doc, range) {
    const section = document.getElementById("medications");
    section.hidden = false;
    const note = document.getElementById("meds-note");
    note.textContent = doc.ehrError ? "Note: " + doc.ehrError + "." :
      (doc.medications.length ? "A bar ends where its period ended; an ongoing period runs to the edge of the chart, marked ‘ongoing →’." +
        (doc.medications.some((m) => m.periods.some((p) => p.synthetic)) ? " Hollow bars are synthetic periods." : "") :
        "No medication recorded in the EHR or the MIT plan.");
    const narrow = window.innerWidth < 600;
    const labels = doc.medications.map((m) => m.display + (narrow ? "" : " · " + (SOURCES[m.source] ? SOURCES[m.source].label : m.source)));
    // An ongoing period runs past the axis' end (timeAxis adds a margin there): drawn to the edge.
    const ongoingEnd = range.max + (range.max - range.min);
    const bySource = {};
    doc.medications.forEach((m, i) => {
      for (const p of m.periods) {
        const src = m.source in SOURCES ? m.source : "ehr";
        (bySource[src] = bySource[src] || []).push({
          x: [Date.parse(p.start), p.stop ? Date.parse(p.stop) : ongoingEnd], y: labels[i], period: p, drug: m.display });
      }
    });
    // Synthetic periods are hollow bars, as synthetic scores are hollow markers.
    const datasets = Object.entries(bySource).map(([src, data]) => ({
      label: SOURCES[src].label, data, borderSkipped: false, barPercentage: 0.9, categoryPercentage: 0.9, grouped: false,
      backgroundColor: (c) => (c.raw && c.raw.period.synthetic ? "#ffffff" : SOURCES[src].colour),
      borderColor: (c) => (c.raw && c.raw.period.synthetic ? SOURCES[src].colour : "#ffffff"), borderWidth: 2,
    }));
    const canvas = document.getElementById("meds-chart");
    if (!doc.medications.length) {  // nothing to draw: the note says so, no empty axes
      canvas.parentElement.hidden = true;
      document.getElementById("meds-table").hidden = true;
      return;
    }
    canvas.parentElement.style.height = (80 + 48 * Math.max(1, labels.length)) + "px";
    section.classList.toggle("sticky", labels.length <= 3);  // app.css: kept on screen when short
    canvas.setAttribute("aria-label", "Medication timeline: " + (labels.join("; ") || "none") + ". The table below gives the periods.");
    charts.medications = new Chart(canvas, {
      type: "bar", data: { labels, datasets }, plugins: [O.doseLabels],
      options: {
        indexAxis: "y", animation: false, maintainAspectRatio: false,
        scales: { x: timeAxis(range),
                  y: { ticks: { color: "#24292f" }, afterFit: fixedWidth } },
        plugins: { legend: { labels: { color: "#24292f" } },
          tooltip: { callbacks: { label: (item) => {
            const p = item.raw.period;
            return item.raw.drug + ": " + (p.dose || "dose not given") + ", " + day(p.start) + " – " +
              (day(p.stop) || "ongoing") + " (" + O.periodState(p) + ")" + (p.synthetic ? " (synthetic)" : "");
          } } } },
      },
    });
    const body = document.getElementById("meds-rows");
    for (const [attrs, cells] of O.medicationTable(doc)) {
      const row = element("tr", attrs);
      cells.forEach((c, i) => mitFhir.cell(row, c, i === 0));
      body.appendChild(row);
    }
  }

  async function load() {
    const doc = await mitFhir.request("GET", root.dataset.source);
    document.getElementById("synthetic-banner").hidden = !doc.synthetic;
    const range = timeRange(doc);
    if (range.min !== undefined) {
      document.getElementById("period").textContent = "Period shown: " + day(new Date(range.min).toISOString()) +
        " to " + day(new Date(range.max).toISOString()) + ".";
    }
    O.summary(doc);
    medicationChart(doc, range);  // right under the summary: prescriptions beside the scores
    doc.instruments.forEach((ins, i) => scoreChart(ins, i, range, doc));
    status.textContent = doc.instruments.length
      ? "Instruments charted: " + doc.instruments.length + "."
      : "No scores recorded yet for this patient.";
    root.dataset.ready = "true";
  }

  load().catch((err) => { status.textContent = "The outcomes could not be loaded: " + err.message; });
})();
