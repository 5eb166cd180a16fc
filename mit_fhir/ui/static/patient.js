/* The patient's list page: in hand-over mode, "I have finished" ends the hand-over. */
"use strict";
(function () {
  const finished = document.getElementById("finished");
  if (!finished) return;
  finished.addEventListener("click", async () => {
    finished.disabled = true;
    const answer = await mitFhir.request("POST", finished.dataset.url, {});
    window.location.replace(answer.url);
  });
})();
