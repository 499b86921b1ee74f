// The thread as a tree: edit one of my messages and resend it, regenerate an answer, flip
// between versions (`< 2/3 >`), switch the assistant that answers next, and rate answers.
// Each change is a POST; the server then renders the branch it shows (the source of truth)
// and the list is swapped for it, and the socket replays from there.

export function tree(chat, view, socket) {
  const errorLine = document.getElementById("composer-error");
  const picker = document.getElementById("thread-assistant");
  const touch = window.matchMedia("(pointer: coarse)").matches;
  const messageUrl = (id, action) => chat.dataset.messageUrl.replace(/\/0\/$/, "/" + id + "/") + action + "/";

  function csrfToken() {
    return document.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      // an HTML error page: the status speaks
    }
    if (!response.ok) {
      const words = data.error ? data.error.message : "That did not work (the server said " + response.status + ").";
      throw new Error(words);
    }
    return data;
  }

  function say(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  async function refresh() {
    const response = await fetch(chat.dataset.listUrl, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const lastId = view.replaceList(await response.text());
    if (socket) socket.resync(lastId);
  }

  // One action at a time; its button stays disabled until it is done.
  async function act(button, work) {
    if (button.disabled) return;
    button.disabled = true;
    say("");
    try {
      await work();
    } catch (error) {
      say(error.message || "Could not reach the server. Try again.");
    } finally {
      button.disabled = false;
    }
  }

  // --- Versions, regenerate ----------------------------------------------------------------

  function showVersion(button) {
    act(button, async () => {
      await post(chat.dataset.versionUrl, { message: button.dataset.target });
      await refresh();
    });
  }

  function regenerate(button) {
    act(button, async () => {
      const data = await post(messageUrl(button.dataset.message, "regenerate"));
      await refresh();
      view.showRun(data.run);
    });
  }

  // --- Edit and resend -----------------------------------------------------------------------

  function edit(button) {
    const item = button.closest("li.message.user");
    if (item.querySelector(".edit-box")) return;
    const body = item.querySelector(".body");
    const box = document.createElement("form");
    box.className = "edit-box";
    box.innerHTML =
      '<textarea rows="3" aria-label="Edit your message"></textarea>' +
      '<div class="buttons"><button type="button" class="cancel-edit">Cancel</button>' +
      '<button type="submit" class="send-edit">Send</button></div>';
    const area = box.querySelector("textarea");
    area.value = body.textContent; // as typed
    area.maxLength = document.getElementById("composer-text").maxLength;
    body.hidden = true;
    item.classList.add("editing");
    for (const actions of item.querySelectorAll(".message-actions")) actions.hidden = true;
    body.after(box);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
    const close = () => {
      box.remove();
      body.hidden = false;
      item.classList.remove("editing");
      for (const actions of item.querySelectorAll(".message-actions")) actions.hidden = false;
    };
    box.querySelector(".cancel-edit").addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      // As in the composer: Enter sends on a desktop, adds a line on a touch screen.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touch) {
        event.preventDefault();
        box.requestSubmit();
      }
    });
    box.addEventListener("submit", (event) => {
      event.preventDefault();
      act(box.querySelector(".send-edit"), async () => {
        const data = await post(messageUrl(item.dataset.id, "edit"), { text: area.value });
        await refresh();
        view.showRun(data.run);
      });
    });
  }

  // --- Feedback --------------------------------------------------------------------------------

  function rate(button) {
    const thumbs = button.closest(".feedback");
    const rating = Number(button.dataset.rating);
    act(button, async () => {
      await post(messageUrl(thumbs.dataset.message, "feedback"), { rating });
      thumbs.dataset.rating = String(rating);
      for (const thumb of thumbs.querySelectorAll(".thumb")) {
        thumb.setAttribute("aria-pressed", String(Number(thumb.dataset.rating) === rating));
      }
      askWhy(thumbs, rating);
    });
  }

  // After a thumb: an optional comment, and whether the staff may read this chat with it.
  function askWhy(thumbs, rating) {
    const version = thumbs.closest(".version");
    let form = version.querySelector(".feedback-form");
    if (form) form.remove();
    form = document.createElement("form");
    form.className = "feedback-form";
    form.innerHTML =
      '<label>Tell us more (optional)<textarea maxlength="2000"></textarea></label>' +
      '<label class="share"><input type="checkbox"> Share this chat with the staff, so they can read it</label>' +
      '<div class="buttons"><button type="button" class="skip">Close</button>' +
      '<button type="submit">Send feedback</button></div>';
    version.append(form);
    form.querySelector("textarea").focus();
    form.querySelector(".skip").addEventListener("click", () => form.remove());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(form.querySelector("[type=submit]"), async () => {
        await post(messageUrl(thumbs.dataset.message, "feedback"), {
          rating,
          comment: form.querySelector("textarea").value,
          share_thread: form.querySelector("[type=checkbox]").checked,
        });
        const thanks = document.createElement("p");
        thanks.className = "feedback-thanks";
        thanks.setAttribute("role", "status");
        thanks.textContent = "Thanks for the feedback.";
        form.replaceWith(thanks);
      });
    });
  }

  // --- Clicks in the list ----------------------------------------------------------------------

  view.onSwitch = (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.matches(".versions [data-target]")) showVersion(target);
    else if (target.matches(".edit")) edit(target);
    else if (target.matches(".regenerate")) regenerate(target);
    else if (target.matches(".thumb")) rate(target);
  };

  // A run of a message this page does not show (another tab edited or switched): the branch
  // changed under us, so show the server's.
  document.addEventListener("chat:run", (event) => {
    const run = event.detail.run;
    if (run.prompt_id && !view.hasMessage(run.prompt_id)) refresh();
  });

  // --- Switching assistant ---------------------------------------------------------------------

  if (picker) {
    let chosen = picker.value;
    picker.addEventListener("change", async () => {
      say("");
      try {
        const data = await post(picker.form.action, { assistant: picker.value });
        chosen = picker.value;
        const name = data.assistant.name;
        chat.dataset.assistantName = name;
        document.getElementById("composer-assistant").textContent = name;
        document.getElementById("composer-text").placeholder = "Message " + name;
        await refresh(); // the marker where the switch happened
      } catch (error) {
        picker.value = chosen;
        say(error.message || "Could not switch the assistant.");
      }
    });
  }

  return { refresh };
}
