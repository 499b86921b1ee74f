// Light, dark or the system's setting: applied before the first paint (this script is loaded
// in <head>, not deferred) and remembered in localStorage; a button cycles through the three.
(function () {
  "use strict";

  const KEY = "theme";
  const CHOICES = ["system", "light", "dark"];
  const root = document.documentElement;

  function stored() {
    try {
      return localStorage.getItem(KEY) || "system";
    } catch (error) {
      return "system"; // storage disabled
    }
  }

  function apply(choice) {
    if (choice === "system") root.removeAttribute("data-theme");
    else root.dataset.theme = choice;
  }

  apply(stored());

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const show = (choice) => {
      button.textContent = "Theme: " + choice;
      const next = CHOICES[(CHOICES.indexOf(choice) + 1) % CHOICES.length];
      button.title = "Switch to the " + next + " theme";
    };
    show(stored());
    button.hidden = false;
    button.addEventListener("click", () => {
      const next = CHOICES[(CHOICES.indexOf(stored()) + 1) % CHOICES.length];
      try {
        localStorage.setItem(KEY, next);
      } catch (error) {
        // storage disabled: the choice lasts for this page only
      }
      apply(next);
      show(next);
    });
  });
})();
