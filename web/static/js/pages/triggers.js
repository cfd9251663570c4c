// Triggers: list, create (manual, webhook, cron), enable/disable, delete; webhook URLs.

import { api, ApiError, optional } from "../api.js";
import { schedulerOf } from "../normalize.js";
import {
  $,
  $$,
  errorBox,
  fmtAgo,
  fmtTime,
  h,
  initShell,
  mount,
  moreButton,
  notAvailable,
  parseJsonField,
  problemList,
  table,
  toast,
} from "../ui.js";

const list = $("[data-list]");
const more = $("[data-more]");
const form = $("[data-create-form]");
const names = new Map();
let rows = [];

function webhookUrl(t) {
  return t.url || new URL(`/api/webhooks/${t.id}`, location.origin).href;
}

function copyable(text) {
  const input = h("input", { class: "code copy-field", value: text, readonly: true, "aria-label": "Webhook URL", onfocus: (e) => e.target.select() });
  const button = h("button", {
    class: "btn small",
    type: "button",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast("Copied.", "success");
      } catch {
        input.focus();
        input.select();
      }
    },
  }, "Copy");
  return h("div", { class: "copy" }, input, button);
}

function details(t) {
  const c = t.config || {};
  if (t.type === "webhook") {
    return [
      copyable(webhookUrl(t)),
      h("span", { class: "small muted" }, `${c.mode || "async"}${c.secret || c.has_secret || c.signed ? " · signed (HMAC-SHA256)" : ""}`),
    ];
  }
  if (t.type === "cron") {
    return [
      h("code", {}, c.cron || "?"),
      c.timezone ? h("span", { class: "small muted" }, ` ${c.timezone}`) : null,
      h("div", { class: "small muted" }, "next ", fmtTime(t.next_fire_at), " · last ", fmtTime(t.last_fired_at)),
    ];
  }
  return h("span", { class: "muted small" }, c.input != null ? `input ${JSON.stringify(c.input).slice(0, 60)}` : "fired by hand (Run now) or POST …/fire");
}

async function setEnabled(t, enabled) {
  try {
    try {
      await api(`/api/triggers/${t.id}`, { method: "PUT", body: { enabled } });
    } catch (err) {
      // A PUT that wants the whole trigger: send it back with the new flag.
      if (!(err instanceof ApiError) || err.status !== 422) throw err;
      await api(`/api/triggers/${t.id}`, { method: "PUT", body: { workflow_id: t.workflow_id, type: t.type, config: t.config, enabled } });
    }
    toast(`Trigger ${enabled ? "enabled" : "disabled"}.`, "success");
  } catch (err) {
    toast(`Could not change the trigger: ${err.message}`, "error");
  }
  load();
}

async function fire(t) {
  try {
    const started = await api(`/api/triggers/${t.id}/fire`, { method: "POST", body: {} });
    location.assign(`/executions/${started.execution_id}`);
  } catch (err) {
    toast(`Could not start: ${err.message}`, "error");
  }
}

async function remove(t) {
  if (!confirm(`Delete this ${t.type} trigger?`)) return;
  try {
    await api(`/api/triggers/${t.id}`, { method: "DELETE" });
    toast("Trigger deleted.", "success");
  } catch (err) {
    toast(`Could not delete: ${err.message}`, "error");
  }
  load();
}

function render() {
  list.replaceChildren(
    table(
      [
        { label: "Type", cell: (t) => h("span", { class: `tag trigger-${t.type}`, title: `created ${t.created_at}` }, t.type) },
        { label: "Workflow", cell: (t) => h("a", { href: `/workflows/${t.workflow_id}` }, names.get(t.workflow_id) || t.workflow_id.slice(0, 8)) },
        { label: "Details", cell: details },
        {
          label: "Enabled",
          cell: (t) =>
            h("button", {
              class: `switch${t.enabled ? " on" : ""}`,
              type: "button",
              role: "switch",
              "aria-checked": String(Boolean(t.enabled)),
              "aria-label": `${t.enabled ? "Disable" : "Enable"} trigger ${t.id}`,
              onclick: () => setEnabled(t, !t.enabled),
            }, t.enabled ? "on" : "off"),
        },
        {
          label: "",
          class: "row-actions",
          cell: (t) => [
            t.type === "manual" ? h("button", { class: "btn small", type: "button", disabled: !t.enabled, onclick: () => fire(t) }, "Run now") : null,
            h("button", { class: "btn small danger", type: "button", onclick: () => remove(t) }, "Delete"),
          ],
        },
      ],
      rows,
      { empty: "No triggers yet: create one on the right." },
    ),
  );
}

async function load(cursor = null) {
  try {
    const page = await optional("/api/triggers", { query: { limit: 50, cursor } });
    if (!page) {
      list.replaceChildren(notAvailable("The triggers API"));
      form.querySelector("button[type=submit]").disabled = true;
      return;
    }
    rows = cursor ? rows.concat(page.items) : page.items;
    render();
    moreButton(more, page.next_cursor, load);
  } catch (err) {
    list.replaceChildren(errorBox(err));
  }
}

function showTypeFields() {
  const type = form.elements.type.value;
  for (const box of $$("[data-type-fields]", form)) box.hidden = !box.dataset.typeFields.split(" ").includes(type);
}

async function create(event) {
  event.preventDefault();
  const errors = $("[data-create-error]");
  errors.hidden = true;
  const f = form.elements;
  const type = f.type.value;
  const config = {};
  try {
    if (type === "cron") {
      config.cron = f.cron.value.trim();
      if (f.timezone.value.trim()) config.timezone = f.timezone.value.trim();
      config.misfire = f.misfire.value;
    }
    if (type === "cron" || type === "manual") {
      const input = parseJsonField(f.input.value);
      if (input !== undefined) config.input = input;
    } else if (type === "webhook") {
      config.mode = f.mode.value;
      if (f.secret.value) config.secret = f.secret.value;
    }
  } catch (err) {
    mount(errors, h("li", {}, `Input is not valid JSON: ${err.message}`));
    errors.hidden = false;
    return;
  }
  try {
    const trigger = await api("/api/triggers", {
      method: "POST",
      body: { workflow_id: f.workflow_id.value, type, config, enabled: f.enabled.checked },
    });
    toast(`Created a ${type} trigger.`, "success");
    mount(
      $("[data-created]"),
      type === "webhook"
        ? h("div", { class: "alert success" }, h("strong", {}, "Webhook URL"), copyable(webhookUrl(trigger)),
            h("pre", { class: "json small" }, `curl -X POST ${webhookUrl(trigger)} \\\n  -H 'Content-Type: application/json' -d '{"hello": "world"}'`))
        : null,
    );
    form.reset();
    showTypeFields();
    load();
  } catch (err) {
    if (err instanceof ApiError && err.problems.length) {
      mount(errors, problemList(err.problems).childNodes);
    } else {
      mount(errors, h("li", {}, err.message));
    }
    errors.hidden = false;
  }
}

async function scheduler() {
  const box = $("[data-scheduler]");
  try {
    const status = schedulerOf(await optional("/api/scheduler/status"));
    if (!status) return mount(box, notAvailable("Scheduler status"));
    mount(
      box,
      h("p", {}, "Beat: ", status.beatAlive === null ? "unknown" : status.beatAlive ? "alive" : "down", " · last tick ", fmtAgo(status.lastTick)),
      table(
        [
          { label: "Trigger", cell: (t) => h("code", {}, String(t.id || t.trigger_id || "").slice(0, 8)) },
          { label: "Cron", cell: (t) => h("code", {}, t.cron || t.config?.cron || "") },
          { label: "Next fire", cell: (t) => fmtTime(t.next_fire_at || t.next) },
        ],
        status.triggers,
        { empty: "No cron triggers scheduled." },
      ),
    );
  } catch (err) {
    mount(box, errorBox(err));
  }
}

async function main() {
  try {
    const page = await api("/api/workflows", { query: { limit: 200 } });
    const select = $("[data-workflow-select]", form);
    for (const w of page.items) {
      names.set(w.id, w.name);
      select.append(h("option", { value: w.id }, w.name));
    }
  } catch (err) {
    toast(err.message, "error");
  }
  form.addEventListener("change", showTypeFields);
  form.addEventListener("submit", create);
  showTypeFields();
  load();
  scheduler();
}

if (initShell()) main();
