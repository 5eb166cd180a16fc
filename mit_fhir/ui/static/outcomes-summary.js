/* The five-second read at the top of the outcomes page: the risk alerts of each instrument's
   latest assessment in words (or that there are none, or that no risk screen is on record),
   then what is due (overdue first), then one line per instrument: its latest value, band and change since the baseline. */
"use strict";
(function () {
  const O = window.mitOutcomes;
  const { day, verdict, element } = O;
  const WORD = { critical: "Critical", warning: "Warning" };

  function riskPart(doc) {
    const box = element("div", { id: "risk-summary", class: "risk-summary" });
    const latest = doc.instruments.map((ins) => [ins, ins.points[ins.points.length - 1]]).filter(([, p]) => p);
    const flagged = latest.filter(([, p]) => (p.alerts || []).length);
    if (flagged.length) {
      box.classList.add("has-alert");
      box.appendChild(element("h3", {}, "Risk alerts in the latest assessments"));
      const list = element("ul");
      for (const [ins, p] of flagged) for (const a of p.alerts) {
        const li = element("li", { class: "alert-" + a.level, "data-level": a.level });
        li.appendChild(element("strong", {}, (WORD[a.level] || "Warning") + ": "));
        li.appendChild(document.createTextNode(ins.short + ", " + day(p.date) + ". " + a.message));
        list.appendChild(li);
      }
      box.appendChild(list);
    } else {
      const earlier = doc.instruments.some((ins) => ins.points.some((p) => (p.alerts || []).length));
      box.appendChild(element("p", { id: "no-risk-alert" }, earlier
        ? "No risk alert in the latest assessments (earlier alerts are listed beside their charts)."
        : "No risk alert on record."));
    }
    const screens = new Set((doc.riskScreens || []).map((s) => s.id));
    if (screens.size && !doc.instruments.some((ins) => screens.has(ins.questionnaireId))) {
      box.appendChild(element("p", { id: "no-risk-screen" }, "No risk screen on record (" +
        doc.riskScreens.map((s) => s.name).join(", ") + "): suicide risk has not been assessed with this service."));
    }
    return box;
  }

  // "DERS total: 57 on 2020-09-07 · reliable improvement, out of the clinical range, since 118 on 2019-03-04"
  function scoreLine(ins, index) {
    const first = ins.points[0], last = ins.points[ins.points.length - 1];
    const li = element("li", { "data-code": ins.code });
    li.appendChild(element("a", { href: "#instrument-" + index + "-title" }, ins.short));
    let text = ": " + last.text + " on " + day(last.date);
    if (last.band && !ins.levels) text += " · " + last.band;
    text += ins.points.length > 1
      ? " · " + verdict(last) + ", since " + first.text + " on " + day(first.date)
      : " · the only assessment so far";
    if (last.synthetic) text += " (synthetic)";
    li.appendChild(document.createTextNode(text));
    return li;
  }

  O.summary = function summary(doc) {
    const section = document.getElementById("summary");
    section.appendChild(riskPart(doc));
    const due = O.duePart(doc);  // outcomes-due.js: overdue forms first
    if (due) section.appendChild(due);
    if (doc.instruments.length) {
      const list = element("ul", { id: "score-summary" });
      doc.instruments.forEach((ins, i) => { if (ins.points.length) list.appendChild(scoreLine(ins, i)); });
      section.appendChild(list);
    }
    section.hidden = false;
  };
})();
