// /login: check the key against the API once, keep it for this tab, go back where we were.

import { api, ApiError, setKey } from "../api.js";
import { $, initShell } from "../ui.js";

initShell({ needsKey: false });

const form = $("[data-login-form]");
const error = $("[data-login-error]");

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only paths on this site: never an open redirect.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const key = form.elements.key.value.trim();
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await api("/api/workflows", { query: { limit: 1 }, key });
    setKey(key);
    location.assign(nextPage());
  } catch (err) {
    error.textContent =
      err instanceof ApiError && err.status === 401
        ? "That key was not accepted: check it, or ask for a new one."
        : `Could not check the key: ${err.message}`;
    error.hidden = false;
    button.disabled = false;
  }
});
form.elements.key.focus();
