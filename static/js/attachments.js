// Files: the composer's chips (pick with the paperclip, drop on the chat, or paste), each uploaded at
// once and checked by the server, which says in a sentence why it refuses one; the files
// and thumbnails of sent messages; and the numbered sources under an answer, which its [n]
// markers link to.

export function filePicker(form, showError) {
  const box = form.querySelector(".composer-box");
  const list = document.getElementById("composer-files");
  const input = document.getElementById("file-input");
  const button = document.getElementById("attach");
  const limits = document.getElementById("file-limits");
  const perMessage = Number(box.dataset.perMessage);
  const maxBytes = Number(box.dataset.maxBytes);
  const chips = []; // {chip, id, uploading}

  const csrf = () => form.querySelector("[name=csrfmiddlewaretoken]").value;

  function refresh() {
    list.hidden = chips.length === 0;
    limits.hidden = chips.length === 0;
  }

  function chipFor(file) {
    const chip = document.createElement("li");
    chip.className = "file-chip uploading";
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = file.name || "pasted image";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon-button remove";
    remove.setAttribute("aria-label", "Remove " + name.textContent);
    remove.textContent = "×";
    chip.append(name, remove);
    list.append(chip);
    return chip;
  }

  async function add(file) {
    if (chips.length >= perMessage) {
      showError("A message can carry at most " + perMessage + " files.");
      return;
    }
    if (file.size > maxBytes) {
      const most = (maxBytes / 1048576).toFixed(1) + " MB";
      showError("“" + file.name + "” is larger than " + most + ", the most a file may be.");
      return;
    }
    const entry = { chip: chipFor(file), id: null, uploading: true };
    chips.push(entry);
    refresh();
    entry.chip.querySelector(".remove").addEventListener("click", () => discard(entry));
    const data = new FormData();
    data.append("file", file, file.name || "pasted.png");
    try {
      const response = await fetch(box.dataset.uploadUrl, {
        method: "POST", headers: { "X-CSRFToken": csrf(), Accept: "application/json" }, body: data,
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error ? body.error.message : "“" + file.name + "” could not be attached.");
      entry.id = body.attachment.id;
      entry.url = body.attachment.url;
      entry.chip.classList.remove("uploading");
      entry.chip.dataset.id = entry.id;
      if (body.attachment.thumbnail_url) {
        const image = document.createElement("img");
        image.src = body.attachment.thumbnail_url;
        image.alt = "";
        entry.chip.prepend(image);
        entry.chip.classList.add("has-thumbnail");
      }
    } catch (error) {
      showError(error.message || "Could not reach the server to attach “" + file.name + "”.");
      forget(entry);
      return;
    } finally {
      entry.uploading = false;
    }
    if (!chips.includes(entry)) discardOnServer(entry); // removed while it uploaded
  }

  function forget(entry) {
    const index = chips.indexOf(entry);
    if (index >= 0) chips.splice(index, 1);
    entry.chip.remove();
    refresh();
  }

  function discardOnServer(entry) {
    if (!entry.id) return;
    fetch(entry.url, { method: "DELETE", headers: { "X-CSRFToken": csrf() } }).catch(() => {});
  }

  function discard(entry) {
    forget(entry);
    if (!entry.uploading) discardOnServer(entry);
  }

  const addAll = (files) => { for (const file of files) add(file); };

  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addAll(input.files);
    input.value = "";
  });
  document.getElementById("composer-text").addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (!files.length) return; // plain text pastes as usual
    event.preventDefault();
    addAll(files);
  });
  const target = form.closest("main") || form;
  target.addEventListener("dragover", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    box.classList.add("dropping");
  });
  target.addEventListener("dragleave", () => box.classList.remove("dropping"));
  target.addEventListener("drop", (event) => {
    if (!event.dataTransfer.files.length) return;
    event.preventDefault();
    box.classList.remove("dropping");
    addAll(event.dataTransfer.files);
  });

  return {
    ids: () => chips.filter((entry) => entry.id).map((entry) => entry.id),
    busy: () => chips.some((entry) => entry.uploading),
    clear: () => {
      for (const entry of [...chips]) forget(entry); // sent: they belong to the message now
    },
  };
}

// A sent message's files, as the server renders them (_files.html).
export function fileList(attachments) {
  if (!attachments || !attachments.length) return null;
  const list = document.createElement("ul");
  list.className = "files";
  list.setAttribute("aria-label", "Attached files");
  for (const file of attachments) {
    const item = document.createElement("li");
    item.className = "file-chip" + (file.thumbnail_url ? " has-thumbnail" : "");
    const link = document.createElement("a");
    link.href = file.url;
    link.target = "_blank";
    link.rel = "noopener";
    if (file.thumbnail_url) {
      const image = document.createElement("img");
      image.src = file.thumbnail_url;
      image.alt = file.name;
      link.append(image);
    }
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = file.name;
    link.append(name);
    item.append(link);
    list.append(item);
  }
  return list;
}

// An answer's sources (_sources.html), after its part.
export function sourceList(runId, sources) {
  if (!sources || !sources.length) return null;
  const list = document.createElement("ol");
  list.className = "sources";
  list.setAttribute("aria-label", "Sources");
  for (const source of sources) {
    const item = document.createElement("li");
    item.value = source.number;
    item.id = "source-" + runId + "-" + source.number;
    const title = document.createElement(source.url ? "a" : "span");
    if (source.url) {
      title.href = source.url;
      title.target = "_blank";
      title.rel = "noopener";
    }
    title.textContent = source.title;
    item.append(title);
    if (source.page) {
      const page = document.createElement("span");
      page.className = "page";
      page.textContent = " page " + source.page;
      item.append(page);
    }
    list.append(item);
  }
  return list;
}

// [n] in an answer's text (not in code) becomes a link to its source, where it has one.
export function linkCitations(part, runId) {
  const walker = document.createTreeWalker(part, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (/\[\d{1,3}\]/.test(node.data) && !node.parentElement.closest("code, pre, a")) nodes.push(node);
  }
  for (const node of nodes) {
    const pieces = node.data.split(/(\[\d{1,3}\])/);
    const fragment = document.createDocumentFragment();
    for (const piece of pieces) {
      const match = /^\[(\d{1,3})\]$/.exec(piece);
      const source = match && document.getElementById("source-" + runId + "-" + match[1]);
      if (!source) {
        fragment.append(piece);
        continue;
      }
      const link = document.createElement("a");
      link.className = "citation";
      link.href = (source.querySelector("a") || {}).href || "#" + source.id;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = match[1];
      link.setAttribute("aria-label", "Source " + match[1] + ": " + source.textContent.trim());
      const sup = document.createElement("sup");
      sup.append(link);
      fragment.append(sup);
    }
    node.replaceWith(fragment);
  }
}
