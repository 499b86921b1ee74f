// Keyboard shortcuts, as chat apps have them, and the dialog that lists them.
export function shortcuts({ composer, sidebar }) {
  const help = document.getElementById("help");
  const openHelp = () => {
    if (!help.open) help.showModal();
  };
  document.getElementById("help-button").addEventListener("click", openHelp);

  document.addEventListener("keydown", (event) => {
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (ctrl && event.shiftKey && key === "o") {
      event.preventDefault();
      location.assign(document.getElementById("new-chat").href);
    } else if (ctrl && key === "k") {
      event.preventDefault();
      sidebar.focusSearch();
    } else if (ctrl && key === "/") {
      event.preventDefault();
      openHelp();
    } else if (event.key === "Escape" && event.shiftKey) {
      event.preventDefault();
      composer.focus();
    } else if (event.key === "Escape" && !help.open) {
      if (sidebar.closeDrawer() || composer.stop()) event.preventDefault();
    }
  });
}
