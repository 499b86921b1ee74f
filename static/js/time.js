// Relative times ("3 minutes ago") for every <time data-relative>; the exact local time is
// kept in its title. Refreshed every 30 seconds and whenever chat.js adds a message.
(function () {
  "use strict";

  const format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, {
    numeric: "auto",
  });
  const UNITS = [
    ["year", 31536000],
    ["month", 2592000],
    ["week", 604800],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];

  function relative(date) {
    const seconds = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(seconds) < 45) return "just now";
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
    }
    return format.format(Math.round(seconds / 60), "minute");
  }

  function render() {
    for (const element of document.querySelectorAll("time[data-relative]")) {
      const date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) continue;
      if (!element.title) element.title = date.toLocaleString();
      element.textContent = relative(date);
    }
  }

  render();
  setInterval(render, 30000);
  // After the listeners that add the <time> to a new message have run.
  document.addEventListener("chat:message", () => setTimeout(render));
})();
