// The sidebar of chats: grouped by date, live search with the matching snippet, more chats as
// you scroll, inline rename, delete with undo; a drawer on a phone. Without JavaScript the
// same links and forms lead to the search, rename and delete pages.
const UNDO_MS = 6000;
const SEARCH_DELAY_MS = 200;

export function sidebar() {
  const aside = document.getElementById("sidebar");
  const app = document.getElementById("app");
  const container = document.getElementById("threads");
  const search = document.getElementById("search-q");
  const menuButton = document.getElementById("menu-button");
  const scrim = document.getElementById("scrim");
  const toast = document.getElementById("toast");
  const narrow = window.matchMedia("(max-width: 48rem)");
  let loadMore = document.getElementById("load-more");
  const csrf = () => document.querySelector("[name=csrfmiddlewaretoken]").value;

  // --- The drawer (phones) ------------------------------------------------------------------

  function setDrawer(open) {
    app.classList.toggle("drawer-open", open);
    menuButton.setAttribute("aria-expanded", String(open));
    scrim.hidden = !open;
    aside.inert = narrow.matches && !open;
    if (open) search.focus();
  }
  function layout() {
    menuButton.hidden = !narrow.matches;
    setDrawer(false);
  }
  narrow.addEventListener("change", layout);
  layout();
  menuButton.addEventListener("click", () => setDrawer(!app.classList.contains("drawer-open")));
  scrim.addEventListener("click", () => setDrawer(false));

  // --- Listing: groups, search, more ---------------------------------------------------------

  function item(thread) {
    const li = document.createElement("li");
    li.className = "thread-item";
    li.dataset.id = thread.id;
    const link = document.createElement("a");
    link.className = "thread-title";
    link.href = aside.dataset.threadUrl.replace("/0/", "/" + thread.id + "/");
    link.title = thread.title;
    link.textContent = thread.title;
    if (String(thread.id) === aside.dataset.current) link.setAttribute("aria-current", "page");
    if (thread.snippet) link.append(snippetOf(thread.snippet));
    const menu = document.createElement("details");
    menu.className = "row-menu";
    menu.innerHTML = '<summary><span aria-hidden="true">⋯</span></summary><div class="menu-panel">' +
      '<a data-action="rename">Rename</a><a data-action="delete" class="danger">Delete</a></div>';
    menu.querySelector("summary").setAttribute("aria-label", "Options for “" + thread.title + "”");
    menu.querySelector('[data-action="rename"]').href = link.href + "rename/";
    menu.querySelector('[data-action="delete"]').href = link.href + "delete/";
    li.append(link, menu);
    return li;
  }

  // The words that matched, marked: text nodes only, never HTML from the server.
  function snippetOf(text) {
    const snippet = document.createElement("span");
    snippet.className = "snippet";
    const query = search.value.trim();
    const at = query ? text.toLowerCase().indexOf(query.toLowerCase()) : -1;
    if (at < 0) {
      snippet.textContent = text;
      return snippet;
    }
    const mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + query.length);
    snippet.append(text.slice(0, at), mark, text.slice(at + query.length));
    return snippet;
  }

  function append(threads) {
    for (const thread of threads) {
      const headings = container.querySelectorAll("h2.group");
      const last = headings[headings.length - 1];
      let group = last && last.textContent === thread.group ? last.nextElementSibling : null;
      if (!group) {
        const heading = document.createElement("h2");
        heading.className = "group";
        heading.textContent = thread.group;
        group = document.createElement("ul");
        group.className = "threads";
        container.append(heading, group);
      }
      group.append(item(thread));
    }
  }

  async function fetchPage(offset) {
    const url = new URL(aside.dataset.pageUrl, location.href);
    url.searchParams.set("offset", offset);
    if (search.value.trim()) url.searchParams.set("q", search.value.trim());
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function setMore(nextOffset) {
    if (nextOffset === null) {
      if (loadMore) loadMore.remove();
      loadMore = null;
      return;
    }
    if (!loadMore) {
      loadMore = document.createElement("button");
      loadMore.type = "button";
      loadMore.className = "link load-more";
      loadMore.id = "load-more";
      loadMore.textContent = "Show more chats";
      loadMore.addEventListener("click", more);
      container.parentElement.append(loadMore);
      watcher.observe(loadMore);
    }
    loadMore.dataset.offset = nextOffset;
  }

  let loading = false;
  async function more() {
    if (loading || !loadMore) return;
    loading = true;
    try {
      const page = await fetchPage(loadMore.dataset.offset);
      append(page.threads);
      setMore(page.next_offset);
    } catch (error) {
      showToast("Could not load more chats. Try again.");
    } finally {
      loading = false;
    }
  }

  // More chats load as the end of the list scrolls into view.
  const watcher = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) more();
  }, { root: aside.querySelector(".thread-nav") });
  if (loadMore) {
    loadMore.addEventListener("click", more);
    watcher.observe(loadMore);
  }

  let searchTimer = null;
  let searchSeq = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const seq = ++searchSeq;
      try {
        const page = await fetchPage(0);
        if (seq !== searchSeq) return; // a later search already answered
        container.replaceChildren();
        append(page.threads);
        setMore(page.next_offset);
        const query = search.value.trim();
        document.getElementById("no-results").hidden = !query || page.threads.length > 0;
        document.getElementById("no-results-query").textContent = query;
        document.getElementById("no-threads").hidden = Boolean(query) || page.threads.length > 0;
      } catch (error) {
        showToast("Search failed. Try again.");
      }
    }, SEARCH_DELAY_MS);
  });
  search.closest("form").addEventListener("submit", (event) => event.preventDefault());

  // --- Rename in place, delete with undo ------------------------------------------------------

  function showToast(text, undo) {
    toast.replaceChildren(text);
    if (undo) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = "Undo";
      button.addEventListener("click", undo);
      toast.append(" ", button);
    }
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(() => {
      toast.hidden = true;
    }, UNDO_MS);
  }

  async function postTo(url, fields, keepalive) {
    // Form-encoded: an empty multipart body is malformed, and Django answers it with a 400.
    const body = new URLSearchParams(fields);
    const response = await fetch(url, {
      method: "POST",
      body,
      keepalive: Boolean(keepalive),
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error ? data.error.message : "please try again.");
    return data;
  }

  function rename(row, url) {
    const link = row.querySelector(".thread-title");
    const old = link.title;
    const input = document.createElement("input");
    input.className = "rename-input";
    input.value = old;
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title for “" + old + "”");
    link.hidden = true;
    link.after(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      if (!save || !title || title === old) return link.focus();
      try {
        const data = await postTo(url, { title });
        showTitle(row, data.thread.title);
      } catch (error) {
        showToast("Could not rename: " + error.message);
      }
      link.focus();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") {
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  function showTitle(row, title) {
    const link = row.querySelector(".thread-title");
    link.firstChild.textContent = title;
    link.title = title;
    if (row.dataset.id === aside.dataset.current) {
      const heading = document.getElementById("chat-title");
      document.title = document.title.replace(heading.textContent, title);
      heading.textContent = title;
      heading.title = title;
    }
  }

  const pendingDeletes = new Map(); // row -> commit()
  function remove(row, url) {
    const title = row.querySelector(".thread-title").title;
    row.hidden = true;
    let timer = null;
    const commit = async (keepalive) => {
      clearTimeout(timer);
      pendingDeletes.delete(row);
      try {
        await postTo(url, {}, keepalive);
        row.remove();
        if (row.dataset.id === aside.dataset.current && !keepalive) location.assign(aside.querySelector("#new-chat").href);
      } catch (error) {
        row.hidden = false;
        showToast("Could not delete “" + title + "”: " + error.message);
      }
    };
    pendingDeletes.set(row, commit);
    timer = setTimeout(() => commit(false), UNDO_MS);
    showToast("Deleted “" + title + "”.", () => {
      clearTimeout(timer);
      pendingDeletes.delete(row);
      row.hidden = false;
      toast.hidden = true;
      row.querySelector(".thread-title").focus();
    });
  }
  // Leaving the page does not cancel a delete the person did not undo.
  window.addEventListener("pagehide", () => {
    for (const commit of [...pendingDeletes.values()]) commit(true);
  });

  aside.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]");
    if (!action) return;
    event.preventDefault();
    const row = action.closest(".thread-item");
    action.closest("details").open = false;
    if (action.dataset.action === "rename") rename(row, action.href);
    else remove(row, action.href);
  });
  // One row menu open at a time.
  aside.addEventListener("toggle", (event) => {
    if (!event.target.open) return;
    for (const other of aside.querySelectorAll("details.row-menu[open]")) {
      if (other !== event.target) other.open = false;
    }
  }, true);

  return {
    focusSearch() {
      if (narrow.matches) setDrawer(true);
      search.focus();
    },
    closeDrawer() {
      if (!app.classList.contains("drawer-open")) return false;
      setDrawer(false);
      menuButton.focus();
      return true;
    },
  };
}
