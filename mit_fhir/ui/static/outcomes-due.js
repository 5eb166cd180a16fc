/* What is due, in words: the "Due and overdue" part of the summary (overdue first, as the
   document orders it) and the mark under each instrument's heading: overdue by how long, the
   next due date, the last completion (synthetic ones labelled) and who fills the form. */
"use strict";
(function () {
  const O = window.mitOutcomes;
  const { day, element } = O;
  const WHO = { patient: "the patient fills it", clinician: "the clinician rates it" };

  // "Overdue by 3 weeks (due 2026-11-10)" | "Next due 2027-01-05 (schedule)" | "Assigned, no due date"
  function when(row) {
    if (row.overdue.length) {
      const late = row.overdue[0];
      const more = row.overdue.length > 1 ? " (" + row.overdue.length + " overdue Tasks)" : "";
      return "Overdue by " + late.by + " (due " + day(late.due) + ")" + more;
    }
    if (row.due) return "Next due " + day(row.due) + (row.dueFrom === "schedule" ? " (schedule)" : "");
    return "Assigned, no due date";
  }

  function last(row) {
    if (!row.last) return "never completed";
    return "last completed " + day(row.last.date) + (row.last.synthetic ? " (synthetic)" : "");
  }

  const words = (row) => [when(row), last(row)].concat(row.owner ? [WHO[row.owner]] : []).join(" · ");

  // One line per form with a Task or a schedule, overdue ones marked (text, not colour only).
  O.duePart = function duePart(doc) {
    const rows = doc.due || [];
    if (!rows.length) return null;
    const box = element("div", { id: "due-summary", class: "due-summary" });
    const late = rows.filter((r) => r.overdue.length).length;
    box.appendChild(element("h3", {}, late ? "Due and overdue (" + late + " overdue)" : "Due next"));
    const list = element("ul");
    for (const row of rows) {
      const li = element("li", { "data-form": row.questionnaireId, class: row.overdue.length ? "overdue" : "due" });
      li.appendChild(element("strong", {}, row.name + ": "));
      li.appendChild(document.createTextNode(words(row)));
      list.appendChild(li);
    }
    box.appendChild(list);
    return box;
  };

  // The mark under an instrument's heading, or null when nothing is due for its form.
  O.dueMark = function dueMark(doc, ins) {
    const row = (doc.due || []).find((r) => r.questionnaireId === ins.questionnaireId);
    if (!row) return null;
    return element("p", { class: "due-mark" + (row.overdue.length ? " overdue" : ""), "data-form": row.questionnaireId },
      words(row) + ".");
  };
})();
