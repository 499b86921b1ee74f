// The tool calls of a run, shown above its answer as collapsible steps: which tool, with what
// arguments, what it answered (long results folded, "Show all" unfolds them), how long it
// took, what went wrong. A call that waits for the user opens with Approve / Deny; the
// decision goes to the server, which is the source of truth (a reload shows the same).

const SHORT_RESULT = 600; // characters of a result shown before "Show all"

const STATES = {
  awaiting_approval: "wants to run: approve or deny",
  approved: "approved",
  running: "running...",
  done: "done",
  error: "failed",
  denied: "denied",
  expired: "not approved in time",
};

export function toolSteps(chat, view) {
  const csrf = () => document.querySelector("[name=csrfmiddlewaretoken]").value;
  const decideUrl = (step, decision) =>
    chat.dataset.socketPath.replace(/^\/ws/, "").replace(/\/$/, "") +
    "/tool-calls/" + step.id + "/" + decision + "/";

  function stepsOf(runId) {
    const version = view.versionFor(runId, null);
    let steps = version.querySelector(":scope > .steps");
    if (!steps) {
      steps = document.createElement("div");
      steps.className = "steps";
      version.querySelector(".body").before(steps);
    }
    steps.hidden = false;
    return steps;
  }

  function summary(step) {
    const parts = [STATES[step.state] || step.state];
    if (step.duration_ms !== null && step.duration_ms !== undefined && step.duration_ms !== "") {
      parts.push(step.duration_ms < 1000 ? step.duration_ms + " ms" : (step.duration_ms / 1000).toFixed(1) + " s");
    }
    if (step.truncated) parts.push("result shortened for the model");
    return parts.join(" · ");
  }

  function pre(className, text) {
    const block = document.createElement("pre");
    block.className = className;
    block.textContent = text;
    return block;
  }

  function label(text) {
    const line = document.createElement("p");
    line.className = "step-label";
    line.textContent = text;
    return line;
  }

  function result(step) {
    const wrap = document.createElement("div");
    wrap.className = "step-result";
    const long = step.output.length > SHORT_RESULT;
    const block = pre("step-output", long ? step.output.slice(0, SHORT_RESULT) + "…" : step.output);
    wrap.append(label(step.state === "error" ? "Error" : "Result"), block);
    if (long) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "show-all";
      more.textContent = "Show all";
      more.addEventListener("click", () => {
        block.textContent = step.output;
        more.remove();
      });
      wrap.append(more);
    }
    return wrap;
  }

  function approval(step) {
    const box = document.createElement("div");
    box.className = "step-approval";
    const ask = document.createElement("p");
    ask.textContent = "The assistant wants to run this tool. Run it?";
    const expires = step.expires_at ? new Date(step.expires_at) : null;
    if (expires) ask.textContent += " (the question expires at " + expires.toLocaleTimeString() + ")";
    box.append(ask);
    for (const [decision, text] of [["approve", "Approve"], ["deny", "Deny"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = decision;
      button.textContent = text;
      button.addEventListener("click", () => decide(step, decision, box));
      box.append(button);
    }
    return box;
  }

  async function decide(step, decision, box) {
    for (const button of box.querySelectorAll("button")) button.disabled = true;
    try {
      const response = await fetch(decideUrl(step, decision), {
        method: "POST",
        headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      });
      if (!response.ok) throw new Error(String(response.status));
      show((await response.json()).step);
    } catch (error) {
      for (const button of box.querySelectorAll("button")) button.disabled = false;
      box.querySelector("p").textContent = "That did not reach the server. Try again.";
    }
  }

  function render(step) {
    const item = document.createElement("details");
    item.className = "tool-step";
    item.dataset.stepId = step.id;
    item.dataset.state = step.state;
    const head = document.createElement("summary");
    const title = document.createElement("span");
    title.className = "step-title";
    title.textContent = step.tool;
    const state = document.createElement("span");
    state.className = "step-state";
    state.textContent = summary(step);
    head.append(title, " ", state);
    const detail = document.createElement("div");
    detail.className = "step-detail";
    detail.append(label("Arguments"), pre("step-arguments", step.arguments || "{}"));
    if (step.output) detail.append(result(step));
    if (step.state === "awaiting_approval") detail.append(approval(step));
    item.append(head, detail);
    item.open = step.state === "awaiting_approval";
    return item;
  }

  function show(step) {
    const steps = stepsOf(step.run_id);
    const old = steps.querySelector('.tool-step[data-step-id="' + step.id + '"]');
    const fresh = render(step);
    if (old) {
      // A step the person opened stays open as it changes.
      fresh.open = fresh.open || (old.open && old.dataset.state !== "awaiting_approval");
      old.replaceWith(fresh);
    } else steps.append(fresh);
  }

  // The server-rendered steps, redrawn the same way as the ones that arrive live.
  for (const item of chat.querySelectorAll(".tool-step[data-step-id]")) {
    const data = item.dataset;
    show({
      id: Number(data.stepId),
      run_id: Number(data.runId),
      round: Number(data.round),
      tool: item.querySelector(".step-title").textContent,
      arguments: item.querySelector(".step-arguments").textContent,
      output: item.querySelector(".step-output").textContent,
      state: data.state,
      truncated: data.truncated === "true",
      error: data.error,
      duration_ms: data.durationMs === "" ? null : Number(data.durationMs),
      expires_at: data.expiresAt || null,
    });
  }

  return { show };
}
