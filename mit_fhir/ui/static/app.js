/* Shared helpers of the mit-fhir pages: JSON requests with the session's CSRF token. */
"use strict";
window.mitFhir = (function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function request(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const message = (data && data.error) || resp.statusText;
      const err = new Error(message);
      err.issues = (data && data.issues) || [];
      err.items = (data && data.items) || [];  // the form's items a refusal names (linkIds)
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function cell(row, text, header) {
    const el = document.createElement(header ? "th" : "td");
    if (header) el.scope = "row";
    el.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(el);
    return el;
  }

  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      await request("POST", signOut.dataset.url, {});
      document.getElementById("main").innerHTML =
        "<h1>Signed out</h1><p>Open the app from the EHR to continue.</p>";
      signOut.remove();
      document.querySelector(".bar nav").remove();
    });
  }

  return { request, cell };
})();

// A page restored from the back-forward cache is shown again from the server: after a
// hand-over, going back must never show the chart the clinician had open.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});
