// The shared-links page: a Copy button beside each link's address.
import { copyButton } from "./copy.js";

for (const input of document.querySelectorAll(".link-url")) {
  const title = input.closest(".link-item").querySelector(".link-title").textContent;
  input.after(copyButton("Copy link", `Copy link to “${title}”`, () => input.value));
  input.addEventListener("focus", () => input.select());
}
