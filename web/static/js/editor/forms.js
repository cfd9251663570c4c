// Simple form fields for each node type's `config` (CONTRACT.md section 1a).
// Every field maps one config key; an empty field removes the key.

export const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

// Types that do work and so may carry `retry` and `timeout_seconds`.
export const WORK_TYPES = new Set(["action", "condition", "delay", "transform", "webhook_response"]);

const FIELDS = {
  start: [],
  fork: [],
  join: [],
  end: [
    { key: "output", label: "Output", kind: "json", placeholder: '"${ .steps.reply.output }" or {"a": "${ .input.a }"}', help: "Optional: an expression or a mapping; default is the node's input." },
  ],
  action: [
    { key: "method", label: "Method", kind: "select", options: HTTP_METHODS },
    { key: "url", label: "URL", kind: "text", placeholder: "https://api.example.com/users/${ .input.user_id }" },
    { key: "timeout_seconds", label: "Timeout (s)", kind: "number", placeholder: "30" },
    { key: "headers", label: "Headers", kind: "json", placeholder: '{"Accept": "application/json"}' },
    { key: "query", label: "Query", kind: "json", placeholder: '{"page": 1}' },
    { key: "body", label: "Body", kind: "json", placeholder: '{"name": "${ .input.name }"}' },
  ],
  condition: [
    { key: "expression", label: "Expression (jq)", kind: "textarea", placeholder: '.steps.get_user.output.body.tier == "vip"', help: 'Outgoing edges take when "true" or when "false".' },
  ],
  delay: [
    { key: "seconds", label: "Seconds", kind: "number", placeholder: "5" },
    { key: "until", label: "Until", kind: "text", placeholder: "2030-01-01T00:00:00Z or ${ .input.at }", help: "Either seconds or until." },
  ],
  transform: [
    { key: "expression", label: "Expression (jq)", kind: "textarea", placeholder: "{name: .steps.get_user.output.body.name}" },
    { key: "mapping", label: "Mapping", kind: "json", placeholder: '{"greeting": "Hello ${ .input.name }"}', help: "Either an expression or a mapping." },
  ],
  webhook_response: [
    { key: "status", label: "Status", kind: "number", placeholder: "200" },
    { key: "headers", label: "Headers", kind: "json", placeholder: '{"Content-Type": "application/json"}' },
    { key: "body", label: "Body", kind: "json", placeholder: '"${ .node.input }"' },
  ],
};

export function fieldsFor(type) {
  return FIELDS[type] || [];
}

/** The config a new node of `type` starts with. */
export function defaultConfig(type) {
  switch (type) {
    case "action":
      return { method: "GET", url: "", timeout_seconds: 30 };
    case "condition":
      return { expression: "true" };
    case "delay":
      return { seconds: 1 };
    case "transform":
      return { expression: "." };
    case "webhook_response":
      return { status: 200, body: "${ .node.input }" };
    default:
      return undefined;
  }
}

/** The text a field shows for a config value. */
export function fieldText(field, value) {
  if (value === undefined || value === null) return "";
  if (field.kind === "json") return JSON.stringify(value, null, 2);
  return String(value);
}

/**
 * The config value for a field's text; undefined removes the key. A JSON field that
 * does not parse is kept as a plain string (so `${ expr }` templates need no quotes).
 */
export function fieldValue(field, text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  if (field.kind === "number") {
    const n = Number(trimmed);
    if (!Number.isFinite(n)) throw new Error("must be a number");
    return n;
  }
  if (field.kind === "json") {
    try {
      return JSON.parse(trimmed);
    } catch {
      if (/^[[{]/.test(trimmed)) throw new Error("looks like JSON but does not parse");
      return text;
    }
  }
  return text;
}
