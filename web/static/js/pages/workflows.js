// Workflows: the list, newest first, with links to detail, editor and executions.

import { api } from "../api.js";
import { $, errorBox, fmtTime, h, initShell, moreButton, table } from "../ui.js";

const list = $("[data-list]");
const more = $("[data-more]");
let rows = [];

async function load(cursor = null) {
  try {
    const page = await api("/api/workflows", { query: { limit: 50, cursor } });
    rows = cursor ? rows.concat(page.items) : page.items;
    list.replaceChildren(
      table(
        [
          { label: "Name", cell: (w) => h("a", { href: `/workflows/${w.id}`, class: "strong" }, w.name) },
          { label: "Description", cell: (w) => h("span", { class: "muted clip" }, w.description || "") },
          { label: "Format", cell: (w) => h("span", { class: "tag" }, w.format) },
          { label: "Version", cell: (w) => `v${w.version}`, class: "num" },
          { label: "Updated", cell: (w) => fmtTime(w.updated_at) },
          {
            label: "",
            class: "row-actions",
            cell: (w) => [
              h("a", { class: "btn small", href: `/workflows/${w.id}/edit` }, "Edit"),
              h("a", { class: "btn small", href: `/executions?workflow_id=${w.id}` }, "Executions"),
            ],
          },
        ],
        rows,
        { empty: "No workflows yet. Create one with the editor, the API or `canvasflow run`." },
      ),
    );
    moreButton(more, page.next_cursor, load);
  } catch (err) {
    list.replaceChildren(errorBox(err));
  }
}

if (initShell()) load();
