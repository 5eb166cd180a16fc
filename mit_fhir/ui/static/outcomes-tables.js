/* The outcomes page's tables and wording: every number the charts draw, again as text
   (screen readers, printing, and the statistics that stay out of the chart labels). */
"use strict";
window.mitOutcomes = (function () {
  // Plain clinical language for the stored change categories (Jacobson & Truax 1991).
  const CATEGORIES = {
    baseline:     { label: "first assessment (baseline)", colour: "#24292f", shape: "rect" },
    recovered:    { label: "reliable improvement, out of the clinical range", colour: "#1a7f37", shape: "circle" },
    improved:     { label: "reliable improvement", colour: "#0550ae", shape: "triangle" },
    unchanged:    { label: "no reliable change", colour: "#57606a", shape: "rectRot" },
    deteriorated: { label: "reliable deterioration", colour: "#9a4700", shape: "crossRot" },
    harmed:       { label: "reliable deterioration into the clinical range", colour: "#cf222e", shape: "cross" },
    none:         { label: "no reliable-change rule for this score", colour: "#6e7781", shape: "rectRounded" },
  };
  const SOURCES = { ehr: { label: "EHR", colour: "#0550ae" }, "mit-plan": { label: "MIT plan", colour: "#8250df" } };
  const ENDED = { "dose-changed": "ended: dose changed", stopped: "stopped", "not-in-plan": "ended: left the plan" };
  const ORIGIN = { "case-report": "case report", synthetic: "synthetic" };

  const day = (iso) => (iso ? String(iso).slice(0, 10) : "");
  const categoryOf = (p) => (CATEGORIES[p.category] ? p.category : "none");
  // What a point says in words: the change verdict, or the stored band change when the score
  // has no reliable-change rule (BPD criteria: "threshold met → threshold not met").
  const verdict = (p) => (categoryOf(p) === "none" && p.bandChange ? p.bandChange : CATEGORIES[categoryOf(p)].label);
  const origin = (p) => (p.synthetic ? "synthetic" : ORIGIN[p.source] || "recorded");
  const periodState = (p) => (p.ended ? ENDED[p.ended] || "ended" : p.stop ? p.status : "ongoing");

  function element(tag, attrs, text) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function table(id, caption, headings, rows) {
    // Focusable and named: on a phone a wide table scrolls inside its box, not the page.
    const wrap = element("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption });
    const t = element("table", { class: "numbers", id });
    t.appendChild(element("caption", {}, caption));
    const head = element("thead");
    const hr = element("tr");
    for (const h of headings) hr.appendChild(element("th", { scope: "col" }, h));
    head.appendChild(hr);
    t.appendChild(head);
    const body = element("tbody");
    for (const [attrs, cells, classes] of rows) {
      const row = element("tr", attrs);
      cells.forEach((c, i) => {
        const el = mitFhir.cell(row, c, i === 0);
        if (classes && classes[i]) el.className = classes[i];
      });
      body.appendChild(row);
    }
    t.appendChild(body);
    wrap.appendChild(t);
    return wrap;
  }

  // Columns without a value for this instrument (no band, no alert, no RCI) are left out.
  function scoreTable(ins, id) {
    const columns = [
      ["Date", null, (p) => day(p.date)],
      [ins.levels ? "Level" : "Score", "value", (p) => p.text],
      ["Change since baseline", "category", verdict],
      ["Band", "band", (p) => p.band || ""],
      ["RCI", "index", (p) => (p.index === null || p.index === undefined ? "" : Number(p.index).toFixed(2))],
      ["Risk alerts", "risk", (p) => (p.alerts || []).map((a) => a.level + ": " + a.message).join("; ")],
      ["Data", "origin", origin],
    ].filter(([, cls, get], i) => i < 3 || cls === "origin" ||
      (cls !== "index" || ins.showIndex) && ins.points.some((p) => get(p) !== ""));
    return table(id + "-table", ins.display + ": every assessment", columns.map((c) => c[0]),
      ins.points.map((p) => [{ "data-observation": p.observation || "", "data-category": categoryOf(p) },
        columns.map((c) => c[2](p)), columns.map((c) => c[1])]));
  }

  function statisticsTable(ins, id) {
    const rows = ins.statistics.map((s) => [{}, [s.name, s.value, s.source, s.verified ? "yes" : "no"]]);
    return rows.length ? table(id + "-stats", ins.display + ": how the clinical range and reliable change are set",
      ["Statistic", "Value", "Source", "Checked in source"], rows) : null;
  }

  function medicationTable(doc) {
    const rows = [];
    for (const m of doc.medications) for (const p of m.periods) {
      rows.push([{ "data-drug": m.code ? m.code.code || m.display : m.display, "data-state": periodState(p) },
        [m.display, p.dose + (p.synthetic ? " (synthetic)" : ""), day(p.start), day(p.stop) || "ongoing",
         periodState(p), SOURCES[m.source] ? SOURCES[m.source].label : m.source]]);
    }
    return rows;
  }

  return { CATEGORIES, SOURCES, day, categoryOf, verdict, origin, periodState, element, table,
           scoreTable, statisticsTable, medicationTable };
})();
