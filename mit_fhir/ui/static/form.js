/* Form filling with LHC-Forms: load the Questionnaire (and a draft), save drafts, submit. */
"use strict";
(function () {
  const root = document.getElementById("form");
  const status = document.getElementById("status");
  const saveButton = document.getElementById("save-draft");
  const submitButton = document.getElementById("submit");
  const say = (text) => { status.textContent = text; };

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

  async function submit() {
    submitButton.disabled = true;
    say("Submitting…");
    try {
      const result = await mitFhir.request("POST", root.dataset.submit, response());
      root.dataset.submitted = result.response;
      showScores(result.scores);
      say("Submitted: " + result.scores.length + " scores recorded.");
    } catch (err) {
      say("Not submitted: " + err.message + (err.issues.length > 1 ? " (" + err.issues.slice(1).join("; ") + ")" : ""));
      submitButton.disabled = false;
    }
  }

  document.getElementById("result-title").tabIndex = -1;
  saveButton.addEventListener("click", saveDraft);
  submitButton.addEventListener("click", submit);
  load().catch((err) => say("The form could not be loaded: " + err.message));
})();
