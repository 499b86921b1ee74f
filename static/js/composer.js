// The composer's comforts: the draft survives a reload, Esc stops the answer, and focus
// stays where the next keystroke is expected.
(function () {
  "use strict";

  const textarea = document.getElementById("composer-text");
  if (!textarea) return;
  const draftKey = "draft:" + location.pathname;
  const hint = document.getElementById("composer-hint");
  if (hint) textarea.setAttribute("aria-describedby", hint.id);

  function draftStore() {
    try {
      return window.localStorage; // throws when storage is disabled
    } catch (error) {
      return null;
    }
  }
  const store = draftStore();

  if (store && !textarea.value) textarea.value = store.getItem(draftKey) || "";
  textarea.addEventListener("input", () => {
    if (!store) return;
    if (textarea.value) store.setItem(draftKey, textarea.value);
    else store.removeItem(draftKey);
  });

  document.addEventListener("chat:message", (event) => {
    // chat.js empties the composer before it shows the message it sent.
    if (event.detail.message.role !== "user" || textarea.value) return;
    if (store) store.removeItem(draftKey);
    const active = document.activeElement;
    if (!active || active === document.body || active.id === "send") textarea.focus();
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const stop = document.getElementById("stop");
    if (stop && !stop.hidden && !stop.disabled) {
      event.preventDefault();
      stop.click();
    }
  });

  // Ready to type on arrival, and again after Stop or Retry hide themselves (focus would fall
  // to the page); not on touch screens, where focus pops up the keyboard.
  const finePointer = window.matchMedia("(pointer: fine)").matches;
  if (finePointer) textarea.focus();
  document.addEventListener("click", (event) => {
    if (finePointer && event.target.closest("#stop, #retry")) setTimeout(() => textarea.focus());
  });
})();
