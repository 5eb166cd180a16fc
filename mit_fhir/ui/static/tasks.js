/* The assignments page: list the patient's Tasks and schedules, assign, cancel, hand over. */
"use strict";
(function () {
  const root = document.getElementById("assignments");
  const W = JSON.parse(document.getElementById("words").textContent);
  const status = document.getElementById("status");
  const errors = document.getElementById("assign-errors");
  const form = document.getElementById("assign-form");
  const lang = root.dataset.lang;
  const say = (text) => { status.textContent = text; };
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  const { request, cell } = window.mitFhir;

  function failed(err) {
    if (err instanceof TypeError) return W.lost_connection;  // fetch: no answer at all
    return fmt(W.not_done, { why: err.message });
  }

  function button(text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  // A cell holds one value element (text, dates, notes inside it): on a phone it sits beside
  // its column's name and wraps within the card, whatever it says. Empty cells stay empty.
  function put(row, parts, header) {
    const el = cell(row, "", header);
    const shown = parts.filter((p) => p !== null && p !== undefined && p !== "");
    if (shown.length) {
      const value = document.createElement("span");
      value.className = "value";
      value.append(...shown);
      el.appendChild(value);
    }
    return el;
  }

  // A date is one token ("2026-12-16" never breaks at its hyphens); the words around it wrap.
  function day(text) {
    if (!text) return null;
    const span = document.createElement("span");
    span.className = "date";
    span.textContent = text;
    return span;
  }

  function dated(template, date) {
    const [before, after] = template.split("{date}");
    return [before, day(date), after === undefined ? "" : after];
  }

  function note(text) {
    const span = document.createElement("span");
    span.className = "note";
    span.lang = lang;
    span.textContent = " (" + text + ")";
    return span;
  }

  // The form's title, with "(from a schedule)" and, for demo data, "(synthetic)".
  function formCell(row, t) {
    const name = put(row, [t.form, t.scheduled ? note(W.from_schedule) : null,
      t.synthetic ? note(W.synthetic) : null], true);
    name.lang = t.formLang;
    return name;
  }

  function ownerText(t) { return t.owner === "patient" ? W.owner_patient : W.owner_clinician; }

  function taskRow(t) {
    const row = document.createElement("tr");
    row.dataset.task = t.id;
    if (t.overdue) row.classList.add("overdue");
    const pick = document.createElement("td");
    if (t.owner === "patient") {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "handover";
      box.value = t.id;
      box.setAttribute("aria-label", fmt(W.select_label, { form: t.form }));
      pick.appendChild(box);
    }
    row.appendChild(pick);
    formCell(row, t);
    put(row, [t.statusText]);
    let due = [day(t.due)];
    if (t.overdue) {
      const strong = document.createElement("strong");
      strong.append(...dated(W.task_overdue, t.due));
      due = [strong];
    }
    put(row, due);
    put(row, [ownerText(t)]);
    const action = document.createElement("td");
    action.appendChild(button(W.cancel, fmt(W.cancel_label, { form: t.form }),
      () => act(root.dataset.api + "/" + encodeURIComponent(t.id) + "/cancel")));
    row.appendChild(action);
    return row;
  }

  // A completed or cancelled Task: nothing to do on it, its reason in its status's tooltip.
  function closedRow(t) {
    const row = document.createElement("tr");
    row.dataset.task = t.id;
    formCell(row, t);
    const state = put(row, [t.statusText]);
    if (t.reason) state.title = t.reason;
    put(row, [day(t.due)]);
    put(row, [ownerText(t)]);
    put(row, [day(t.closed)]);
    return row;
  }

  function scheduleRow(s) {
    const row = document.createElement("tr");
    row.dataset.schedule = s.id;
    // Each form's title marked with its language: on the Italian page an instrument without
    // an Italian title is read as English.
    const titles = [];
    s.titles.forEach((f, i) => {
      if (i) titles.push(", ");
      const span = document.createElement("span");
      span.lang = f.lang;
      span.textContent = f.title;
      titles.push(span);
      if (f.stopped) titles.push(note(W.activity_stopped));
    });
    put(row, [...titles, s.synthetic ? note(W.synthetic) : null], true);
    put(row, [s.cadence]);
    put(row, [day(s.start)]);
    put(row, [s.until]);
    put(row, [day(s.next)]);
    put(row, [s.statusText]);
    const action = document.createElement("td");
    if (s.active) {
      action.appendChild(button(W.stop, fmt(W.stop_label, { forms: s.forms }),
        () => act(root.dataset.api + "/schedules/" + encodeURIComponent(s.id) + "/cancel")));
    }
    row.appendChild(action);
    return row;
  }

  // Each cell carries its column's name: on a phone the rows become cards that show it.
  function labelled(body) {
    const heads = Array.from(body.closest("table").querySelectorAll("thead th"),
      (th) => th.textContent);
    for (const row of body.rows) {
      Array.from(row.cells).forEach((c, i) => { c.dataset.label = heads[i]; });
    }
  }

  function fill(body, wrap, empty, rows, make) {
    body.replaceChildren(...rows.map(make));
    labelled(body);
    wrap.hidden = rows.length === 0;
    empty.hidden = rows.length !== 0;
  }

  async function load() {
    const doc = await request("GET", root.dataset.source);
    const open = doc.tasks.filter((t) => t.open);
    const closed = doc.tasks.filter((t) => !t.open);
    const none = document.getElementById("no-tasks");
    none.textContent = doc.tasks.length ? W.no_open_tasks : W.no_tasks;
    fill(document.getElementById("task-rows"), document.getElementById("tasks-wrap"),
      none, open, taskRow);
    const closedBody = document.getElementById("closed-rows");
    closedBody.replaceChildren(...closed.map(closedRow));
    labelled(closedBody);
    document.getElementById("closed-section").hidden = closed.length === 0;
    document.getElementById("synthetic-banner").hidden = !doc.synthetic;
    fill(document.getElementById("schedule-rows"), document.getElementById("schedules-wrap"),
      document.getElementById("no-schedules"), doc.schedules, scheduleRow);
    // Handing over only makes sense while some open form is the patient's to fill.
    document.getElementById("handover-box").hidden =
      !doc.tasks.some((t) => t.open && t.owner === "patient");
    return doc;
  }

  async function act(url, body) {
    say(W.working);
    try {
      const answer = await request("POST", url + "?lang=" + encodeURIComponent(lang), body || {});
      await load();
      say(answer.message);
      return answer;
    } catch (err) {
      say(failed(err));
      // What the refusal is about may have changed meanwhile: show the list as it is now.
      if (err.status) load().catch(() => {});
      return null;
    }
  }

  function showErrors(err) {
    const issues = err.issues && err.issues.length ? err.issues : [err.message];
    errors.replaceChildren(...issues.map((text) => {
      const line = document.createElement("span");
      line.textContent = text;
      return line;
    }));
    errors.hidden = false;
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const name of err.items || []) {
      const el = name === "forms" ? document.getElementById("forms-field") : form.elements[name];
      if (el && el.setAttribute) el.setAttribute("aria-invalid", "true");
    }
  }

  const onceFields = document.getElementById("once-fields");
  const scheduleFields = document.getElementById("schedule-fields");
  function mode() { return form.querySelector('input[name="mode"]:checked').value; }
  for (const radio of form.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      onceFields.hidden = mode() !== "once";
      scheduleFields.hidden = mode() !== "schedule";
    });
  }
  // Typing a last date or a number of times chooses that ending.
  for (const [field, value] of [["end", "date"], ["count", "count"]]) {
    form.elements[field].addEventListener("input", () => {
      form.querySelector('input[name="ends"][value="' + value + '"]').checked = true;
    });
  }

  function posted() {
    const forms = Array.from(form.querySelectorAll('input[name="forms"]:checked'), (b) => b.value);
    if (mode() === "once") return [root.dataset.once, { forms, due: form.elements.due.value }];
    const ends = form.querySelector('input[name="ends"]:checked').value;
    return [root.dataset.schedule, {
      forms, every: form.elements.every.value, unit: form.elements.unit.value,
      start: form.elements.start.value,
      end: ends === "date" ? form.elements.end.value || "-" : null,
      count: ends === "count" ? form.elements.count.value || "-" : null,
    }];
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [url, body] = posted();
    const submit = document.getElementById("assign");
    submit.disabled = true;
    say(W.working);
    try {
      const answer = await request("POST", url, body);
      errors.hidden = true;
      for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
      for (const box of form.querySelectorAll('input[name="forms"]:checked')) box.checked = false;
      await load();
      say(answer.message);
    } catch (err) {
      if (err.status === 422) {
        showErrors(err);
        say(fmt(W.not_done, { why: err.issues && err.issues.length ? err.issues.join(" ") : err.message }));
      } else {
        say(failed(err));
      }
    } finally {
      submit.disabled = false;
    }
  });

  document.getElementById("handover").addEventListener("click", async () => {
    const chosen = Array.from(document.querySelectorAll('input[name="handover"]:checked'),
      (b) => b.value);
    if (!chosen.length) { say(W.handover_none); return; }
    say(W.handing);
    try {
      const answer = await request("POST", root.dataset.handover, { tasks: chosen });
      window.location.assign(answer.url);
    } catch (err) {
      say(failed(err));
    }
  });

  say(W.loading_tasks);
  load().then(() => { say(""); root.dataset.ready = "true"; }).catch((err) => say(failed(err)));
})();
