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
      if (closeMenus() || sidebar.closeDrawer() || composer.stop()) event.preventDefault();
    }
  });

  // Menus (<details>) close on Escape and on a click elsewhere, as menus do.
  function closeMenus(except) {
    let closed = false;
    for (const menu of document.querySelectorAll("details[open]")) {
      if (menu === except || menu.contains(except)) continue;
      menu.open = false;
      closed = true;
    }
    return closed;
  }
  document.addEventListener("click", (event) => closeMenus(event.target.closest("details")));
}
