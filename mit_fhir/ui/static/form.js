/* Form filling with LHC-Forms: load the Questionnaire (and a draft), save drafts, submit. */
"use strict";
(function () {
  const root = document.getElementById("form");
  const status = document.getElementById("status");
  const saveButton = document.getElementById("save-draft");
  const submitButton = document.getElementById("submit");
  const say = (text) => { status.textContent = text; };

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

  function response() {
    return LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", root);
  }

  async function load() {
    say("Loading the form…");
    const questionnaire = await mitFhir.request("GET", root.dataset.questionnaire);
    const draft = await mitFhir.request("GET", root.dataset.draft);
    let form = LForms.Util.convertFHIRQuestionnaireToLForms(questionnaire, "R4");
    if (draft && draft.item) {
      form = LForms.Util.mergeFHIRDataIntoLForms("QuestionnaireResponse", draft, form, "R4");
    }
    await LForms.Util.addFormToPage(form, root, { prepopulate: false });
    saveButton.disabled = false;
    submitButton.disabled = false;
    root.dataset.ready = "true";
    say(draft && draft.item ? "Draft restored (saved " + draft.authored + ")." : "Ready.");
  }

  async function saveDraft() {
    saveButton.disabled = true;
    try {
      const saved = await mitFhir.request("PUT", root.dataset.draft, response());
      say("Draft saved at " + saved.saved + ".");
    } catch (err) {
      say("The draft was not saved: " + err.message);
    } finally {
      saveButton.disabled = false;
    }
  }

  function showScores(scores) {
    const body = document.getElementById("scores");
    body.replaceChildren();
    for (const s of scores) {
      const row = document.createElement("tr");
      row.dataset.code = s.code;
      mitFhir.cell(row, s.display, true);
      mitFhir.cell(row, s.value).className = "value";
      mitFhir.cell(row, s.category || "no change computed").className = "category";
      mitFhir.cell(row, s.reliable === null || s.reliable === undefined ? "" :
        (s.reliable ? "yes" : "no") + (s.flag ? " (" + (s.flag === "B" ? "better" : "worse") + ")" : ""));
      body.appendChild(row);
    }
    const section = document.getElementById("result");
    section.hidden = false;
    section.querySelector("h2").focus({ preventScroll: false });
  }

  let submitting = false;

  async function submit() {
    if (submitting) return;  // a second click or Enter before the first answer
    submitting = true;
    submitButton.disabled = true;
    say("Submitting…");
    try {
      const body = response();
      body.identifier = { system: FILL_SYSTEM, value: fill };
      const result = await mitFhir.request("POST", root.dataset.submit, body);
      storage("drop");  // stored: a reload starts a new fill
      root.dataset.submitted = result.response;
      showScores(result.scores);
      say("Submitted: " + result.scores.length + " scores recorded.");
    } catch (err) {
      // A lost answer (no network, a dropped connection) is a TypeError without issues.
      const issues = err.issues || [];
      say("Not submitted: " + err.message + (issues.length > 1 ? " (" + issues.slice(1).join("; ") + ")" : ""));
      if (err.status === 409) {
        // This fill was stored with other answers (changed after a lost answer): what is now
        // on the page is another fill, stored as such only if the person submits it again.
        fill = newFill();
        storage("set", fill);
        root.dataset.fill = fill;
        say("Not submitted: these answers differ from the ones already submitted from this " +
            "page. Submit again to record them as a new response.");
      }
      submitButton.disabled = false;
    } finally {
      submitting = false;
    }
  }

  document.getElementById("result-title").tabIndex = -1;
  saveButton.addEventListener("click", saveDraft);
  submitButton.addEventListener("click", submit);
  load().catch((err) => say("The form could not be loaded: " + err.message));
})();
