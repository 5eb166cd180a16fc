/* Form filling with LHC-Forms: load the Questionnaire (and a draft), save drafts, submit. */
"use strict";
(function () {
  const root = document.getElementById("form");
  const status = document.getElementById("status");
  const saveButton = document.getElementById("save-draft");
  const submitButton = document.getElementById("submit");
  const W = JSON.parse(document.getElementById("words").textContent);
  const say = (text) => { status.textContent = text; };
  // The patient's own page (ui/patient_forms.py): a thank-you, never scores.
  const patientMode = root.dataset.mode === "patient";
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));

  // One identifier per fill of the form, sent with every attempt to submit it: the service
  // stores a fill once, so a double submit or a retry after a lost answer cannot store a
  // second copy. Kept in sessionStorage (this tab only) so that a reload continues the fill.
  const FILL_SYSTEM = "urn:ietf:rfc:3986";
  const fillKey = "mit-fhir-fill " + root.dataset.submit + " " + root.dataset.patient;

  function newFill() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;  // RFC 9562 version 4, variant 10
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return "urn:uuid:" + h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" +
      h.slice(16, 20) + "-" + h.slice(20);
  }

  function storage(action, value) {
    try {
      if (action === "get") return sessionStorage.getItem(fillKey);
      if (action === "set") sessionStorage.setItem(fillKey, value);
      if (action === "drop") sessionStorage.removeItem(fillKey);
    } catch (err) {
      // Storage refused (a privacy setting, a sandboxed frame): the fill lasts for the page.
    }
    return null;
  }

  let fill = storage("get") || newFill();
  storage("set", fill);
  root.dataset.fill = fill;

  // The grids are groups the server adds for layout only (presentation.py, linkIds
  // "mit-grid-N"): responses leave the page without them, drafts come back into them.
  const GRID = "mit-grid-";
  const gridOf = {};

  function findGrids(items) {
    for (const item of items || []) {
      if (item.linkId.startsWith(GRID)) {
        for (const row of item.item) gridOf[row.linkId] = item.linkId;
      } else {
        findGrids(item.item);
      }
    }
  }

  function flat(items) {
    const out = [];
    for (const item of items || []) {
      if (item.linkId.startsWith(GRID)) out.push(...flat(item.item));
      else out.push(item.item ? { ...item, item: flat(item.item) } : item);
    }
    return out;
  }

  function nested(items) {
    const out = [];
    for (const item of items || []) {
      const grid = gridOf[item.linkId];
      const last = out[out.length - 1];
      if (grid && last && last.linkId === grid) last.item.push(item);
      else if (grid) out.push({ linkId: grid, item: [item] });
      else out.push(item.item ? { ...item, item: nested(item.item) } : item);
    }
    return out;
  }

  function response() {
    const qr = LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", root);
    if (qr.item) qr.item = flat(qr.item);
    return qr;
  }

  // LHC-Forms has no locale setting for its own controls: their strings are replaced where
  // they show, now and whenever it renders more (a repeated group, a date picker).
  const renderer = W.renderer || {};
  function translateControls(node) {
    if (!Object.keys(renderer).length) return;
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = walker.currentNode; n; n = walker.nextNode()) {
      if (n.nodeType === Node.TEXT_NODE) {
        const text = n.nodeValue.trim();
        if (text in renderer) n.nodeValue = n.nodeValue.replace(text, renderer[text]);
        continue;
      }
      // An added node may be a comment (Angular's anchors): it has no attributes.
      if (n.nodeType !== Node.ELEMENT_NODE) continue;
      for (const attr of ["placeholder", "aria-label", "title"]) {
        const value = n.getAttribute(attr);
        if (value && value.trim() in renderer) n.setAttribute(attr, renderer[value.trim()]);
      }
    }
  }

  // LHC-Forms points aria-controls / aria-describedby of its help and "add another" buttons
  // at elements that exist only later (a pop-over, the next repetition): a reference to
  // nothing, which screen readers (and axe) treat as invalid. Missing ids are dropped.
  const REFS = ["aria-controls", "aria-describedby"];
  function fixReferences(node) {
    if (!node.querySelectorAll) return;
    for (const el of node.querySelectorAll("[aria-controls], [aria-describedby]")) {
      for (const attr of REFS) {
        const value = el.getAttribute(attr);
        if (value === null) continue;
        const kept = value.split(/\s+/).filter((id) => id && document.getElementById(id));
        if (kept.length) el.setAttribute(attr, kept.join(" "));
        else el.removeAttribute(attr);
      }
    }
  }

  // LHC-Forms 40 reads a typed date month first: its date picker's format ("MM/dd/yyyy")
  // sits in the same module-private table, with no locale setting. Where the language writes
  // the day first (W.date_day_first), each date item gets a field of the page's own, read
  // day first, and the renderer is handed the date it means; the picker itself is hidden.
  // A date that cannot be read is said and blocks the submit: never a silently swapped date.
  const DMY = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/;
  const ISO = /^(\d{4})-(\d{2})-(\d{2})$/;
  const pad = (n) => String(n).padStart(2, "0");

  function dayFirst(text) {
    const m = DMY.exec(text);
    const parts = m ? [+m[3], +m[2], +m[1]] : (ISO.exec(text) || []).slice(1).map(Number);
    if (parts.length !== 3) return null;
    const [y, mo, d] = parts;
    const date = new Date(y, mo - 1, d);
    return date.getFullYear() === y && date.getMonth() === mo - 1 && date.getDate() === d
      ? date : null;
  }

  function shownDay(value) {
    if (!value) return "";
    const date = value instanceof Date ? value : dayFirst(String(value).slice(0, 10));
    return date ? pad(date.getDate()) + "/" + pad(date.getMonth() + 1) + "/" + date.getFullYear() : "";
  }

  function readDate(field, item) {
    const text = field.value.trim();
    const date = text ? dayFirst(text) : null;
    const bad = Boolean(text) && !date;
    item.value = date || undefined;
    if (date) field.value = shownDay(date);
    field.setAttribute("aria-invalid", String(bad));
    field.nextElementSibling.textContent = bad ? fmt(W.date_invalid, { text }) : "";
    return !bad;
  }

  function dayFirstDates(node) {
    if (!W.date_day_first || !node.querySelectorAll) return;
    const form = root.querySelector("wc-lhc-form");
    const items = (form && form.lhcFormData && form.lhcFormData.itemList) || [];
    for (const picker of node.querySelectorAll("lhc-item-date nz-date-picker")) {
      const item = items.find((i) => i._elementId === picker.id);
      const input = picker.querySelector("input");
      if (picker.dataset.dayFirst || !item || !input) continue;
      picker.dataset.dayFirst = "true";
      const field = document.createElement("input");
      field.type = "text";
      field.inputMode = "numeric";
      field.autocomplete = "off";
      field.className = "day-first";
      field.dataset.item = picker.id;
      field.placeholder = W.date_placeholder;
      field.setAttribute("aria-label", input.getAttribute("aria-label") || "");
      if (picker.getAttribute("aria-required")) field.setAttribute("aria-required", "true");
      const note = document.createElement("span");
      note.className = "field-error";
      note.id = "day-first-" + picker.id;
      field.setAttribute("aria-describedby", note.id);
      field.value = shownDay(item.value);
      field.addEventListener("change", () => readDate(field, item));
      picker.style.display = "none";
      picker.after(field, note);
    }
  }

  // Every day-first field read again (a field still being typed in when Submit is pressed);
  // false, with the first unreadable one focused, when one holds no date.
  function datesRead() {
    const form = root.querySelector("wc-lhc-form");
    const items = (form && form.lhcFormData && form.lhcFormData.itemList) || [];
    let first = null;
    for (const field of root.querySelectorAll("input.day-first")) {
      const item = items.find((i) => i._elementId === field.dataset.item);
      if (item && !readDate(field, item) && !first) first = field;
    }
    if (first) first.focus();
    return !first;
  }

  // LHC-Forms' radio list (ng-zorro nz-radio, the list layout: PHQ-9's difficulty question)
  // answers Space and the arrow keys in its model and by a class, but leaves the native
  // input unchecked: screen readers then say "not checked" and :checked finds nothing. The
  // native state follows the widget's.
  // (After the event: ng-zorro cancels the click, which would undo a state set during it.)
  function syncRadio(el) {
    if (!el.classList || !el.classList.contains("ant-radio-wrapper")) return;
    setTimeout(() => {
      const input = el.querySelector("input[type=radio]");
      const checked = el.classList.contains("ant-radio-wrapper-checked");
      if (input && input.checked !== checked) input.checked = checked;
    }, 0);
  }
  function syncRadios(node) {
    for (const el of node.querySelectorAll(".ant-radio-wrapper")) syncRadio(el);
  }

  async function load() {
    say(W.loading);
    // A grid of five answer columns does not fit a phone: there the items stay lists.
    const narrow = window.matchMedia("(max-width: 47.99rem)").matches;
    const url = root.dataset.questionnaire + (narrow ? "&grid=0" : "");
    const questionnaire = await mitFhir.request("GET", url);
    const draft = await mitFhir.request("GET", root.dataset.draft);
    findGrids(questionnaire.item);
    root.dataset.grids = String(new Set(Object.values(gridOf)).size);
    let form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, "R4");
    if (draft && draft.item) {
      form = LForms.Util.mergeFHIRDataIntoLForms("QuestionnaireResponse",
        { ...draft, item: nested(draft.item) }, form, "R4");
    }
    // The weights are the scoring key: shown beside the answers they would bias a self-report.
    await LForms.Util.addFormToPage(form, root,
      { prepopulate: false, displayScoreWithAnswerText: false });
    translateControls(root);
    fixReferences(root);
    dayFirstDates(root);
    let datesPending = false;
    syncRadios(root);
    new MutationObserver((changes) => {
      for (const c of changes) {
        if (c.type === "attributes" && c.attributeName === "class") { syncRadio(c.target); continue; }
        for (const n of c.addedNodes) { translateControls(n); fixReferences(n); }
      }
      // A new repetition's date picker gets its id and input in later steps of the render:
      // the form is looked at again once this step is done.
      if (W.date_day_first && !datesPending) {
        datesPending = true;
        setTimeout(() => { datesPending = false; dayFirstDates(root); }, 0);
      }
    // (ids too: a repetition's date picker is given its id after it is drawn)
    }).observe(root, { childList: true, subtree: true, attributes: true,
      attributeFilter: ["id", "class"] });
    saveButton.disabled = false;
    submitButton.disabled = false;
    root.dataset.ready = "true";
    say(draft && draft.item ? fmt(W.restored, { when: localTime(draft.authored) }) : W.ready);
    if (patientMode && progress) {
      asked = askedItems(questionnaire.item, []);
      showProgress();
      for (const kind of ["change", "click", "keyup"]) root.addEventListener(kind, laterProgress, true);
    }
  }

  // A saved instant as the person reads it: the local time in the page's language, with
  // the day too when it is not today ("Draft saved at 08:07").
  function localTime(instant) {
    const when = new Date(instant);
    if (Number.isNaN(when.getTime())) return instant;
    const lang = document.documentElement.lang || undefined;
    const today = new Date().toDateString() === when.toDateString();
    return new Intl.DateTimeFormat(lang, today ? { hour: "2-digit", minute: "2-digit" } :
      { day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" }).format(when);
  }

  // Progress on the patient's page ("12 of 36 answered"), said politely when it changes.
  const progress = document.getElementById("progress");
  let asked = null;
  function askedItems(items, out) {
    for (const item of items || []) {
      if (item.type !== "group" && item.type !== "display" && !item.readOnly) out.push(item);
      askedItems(item.item, out);
    }
    return out;
  }
  function answered(items, out) {
    for (const item of items || []) {
      if (item.answer && item.answer.length) out.add(item.linkId);
      answered(item.item, out);
      for (const a of item.answer || []) answered(a.item, out);
    }
    return out;
  }
  let progressPending = null;
  function showProgress() {
    if (!progress || !asked) return;
    const done = answered(response().item, new Set());
    const total = asked.filter((i) => !i.enableWhen || done.has(i.linkId)).length;
    const n = asked.filter((i) => done.has(i.linkId)).length;
    const text = fmt(W.progress, { n, total });
    if (progress.textContent !== text) progress.textContent = text;
    progress.hidden = false;
  }
  function laterProgress() {
    clearTimeout(progressPending);
    progressPending = setTimeout(showProgress, 400);
  }

  // A lost answer (no network, a dropped connection) is a TypeError without a status.
  const why = (err) => (err.status ? (err.issues && err.issues.length ? err.issues.join(" ") : err.message) : null);

  async function saveDraft() {
    if (!datesRead()) { say(W.date_fix); return; }
    saveButton.disabled = true;
    try {
      const saved = await mitFhir.request("PUT", root.dataset.draft, response());
      say(fmt(W.saved, { when: localTime(saved.saved) }));
    } catch (err) {
      say(why(err) === null ? W.draft_lost : fmt(W.not_saved, { why: why(err) }));
    } finally {
      saveButton.disabled = false;
    }
  }

  function showAlerts(alerts) {
    const box = document.getElementById("alerts");
    const list = document.getElementById("alert-list");
    list.replaceChildren();
    for (const a of alerts || []) {
      const li = document.createElement("li");
      li.className = "alert alert-" + (a.level === "critical" ? "critical" : "warning");
      li.dataset.level = a.level;
      li.dataset.item = a.item || "";
      const level = document.createElement("strong");
      level.textContent = (a.level === "critical" ? W.critical : W.warning) + ": ";
      // What it means, then the question and the answer that raised it, as the patient saw them.
      const where = document.createElement("span");
      where.className = "alert-answer";
      where.textContent = a.item ? " \u2014 \u201c" + a.item + "\u201d: " + (a.answer || "") : "";
      li.append(level, a.message || "", where);
      list.appendChild(li);
    }
    box.hidden = !list.children.length;
    // role=alert only once there is something to say: screen readers announce it then.
    if (list.children.length) box.setAttribute("role", "alert");
    else box.removeAttribute("role");
  }

  function showScores(scores) {
    const body = document.getElementById("scores");
    body.replaceChildren();
    for (const s of scores) {
      const row = document.createElement("tr");
      row.dataset.code = s.code;
      mitFhir.cell(row, s.display, true);
      mitFhir.cell(row, s.value).className = "value";
      mitFhir.cell(row, s.category || W.no_change).className = "category";
      mitFhir.cell(row, s.reliable === null || s.reliable === undefined ? "" :
        (s.reliable ? W.yes : W.no) + (s.flag ? " (" + (s.flag === "B" ? W.better : W.worse) + ")" : ""));
      body.appendChild(row);
    }
    const section = document.getElementById("result");
    section.hidden = false;
    section.querySelector("h2").focus({ preventScroll: false });
  }

  function showThanks(safety) {
    // Sent: the form and its buttons go, the thank-you (and the safety message first) stay.
    // The status line (aria-live) says that the answers were sent.
    root.hidden = true;
    saveButton.closest(".actions").hidden = true;
    if (progress) progress.hidden = true;
    const safe = document.getElementById("safety");
    const thanks = document.getElementById("thanks");
    safe.hidden = !safety;
    if (safety) safe.setAttribute("role", "alert");
    thanks.hidden = false;
    say(W.thanks);
    const first = safety ? safe : thanks;
    first.querySelector("h2").tabIndex = -1;
    first.querySelector("h2").focus({ preventScroll: false });
  }

  // The items a refusal names are marked where they are, the first one focused: the message
  // under the buttons says what is missing, the mark says where.
  function markRefused(linkIds) {
    for (const el of root.querySelectorAll(".refused")) el.classList.remove("refused");
    let first = null;
    for (const linkId of linkIds || []) {
      // LHC-Forms ids: "<linkId>/<repetition path>", answers "…|<system>|<code>".
      const own = Array.from(root.querySelectorAll("[id]")).find(
        (el) => el.id.startsWith(linkId + "/") && /^[\d/]+(\||$)/.test(el.id.slice(linkId.length + 1)));
      const place = own && own.closest("tr, lhc-item, .lhc-de, .lhc-layout-horizontal");
      if (!place) continue;
      place.classList.add("refused");
      first = first || place;
    }
    const control = first && first.querySelector("input:not([disabled]), textarea, select");
    if (control) control.focus({ preventScroll: false });
    else if (first) first.scrollIntoView({ block: "center" });
  }

  let submitting = false;

  async function submit() {
    if (submitting) return;  // a second click or Enter before the first answer
    if (!datesRead()) { say(W.date_fix); return; }
    submitting = true;
    submitButton.disabled = true;
    say(W.submitting);
    try {
      const body = response();
      body.identifier = { system: FILL_SYSTEM, value: fill };
      const result = await mitFhir.request("POST", root.dataset.submit, body);
      storage("drop");  // stored: a reload starts a new fill
      markRefused([]);
      root.dataset.submitted = result.response;
      if (patientMode) {
        showThanks(result.safety);
      } else {
        showAlerts(result.alerts);
        showScores(result.scores);
        say(fmt(W.submitted, { n: result.scores.length }));
      }
    } catch (err) {
      if (why(err) === null) {
        say(W.lost);
      } else {
        say(fmt(W.not_submitted, { why: why(err) }));
        markRefused(err.items);
      }
      if (err.status === 409) {
        // This fill was stored with other answers (changed after a lost answer): what is now
        // on the page is another fill, stored as such only if the person submits it again.
        fill = newFill();
        storage("set", fill);
        root.dataset.fill = fill;
      }
      submitButton.disabled = false;
    } finally {
      submitting = false;
    }
  }

  if (!patientMode) document.getElementById("result-title").tabIndex = -1;
  saveButton.addEventListener("click", saveDraft);
  submitButton.addEventListener("click", submit);
  load().catch(() => say(W.load_failed));
})();
