// "Next step" panels, one per plugin, shown on an endpoint's page. A plugin without one gets the
// generic panel: its actions as buttons with their options, so a new plugin (a Dify package) is
// usable from here the day it is installed.
import { api } from "./api.js";
import { actionButton, copyable, copyButton, copyText, download, errorBox, field, h, toast } from "./dom.js";
import { canWrite } from "./state.js";

const panels = new Map();

export function registerNextStep(plugin, render) { panels.set(plugin, render); }

// `created`: the answer to the endpoint's creation (its once-shown secrets), on the first view only.
export function nextStep(endpoint, plugin, created) {
  const render = panels.get(endpoint.plugin) || genericPanel;
  return h("section", { class: "card", "aria-labelledby": "next-step" },
    h("h2", { id: "next-step" }, "Next step"), render(endpoint, plugin, created));
}

const action = (endpoint, name, args = {}) =>
  api.post(`/endpoints/${encodeURIComponent(endpoint.id)}/actions/${encodeURIComponent(name)}`, { args });

function resultText(result) {
  if (typeof result.text === "string" && result.text) return result.text;  // the action's own words
  const value = result.result;
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function genericPanel(endpoint, plugin) {
  const parts = [h("p", {}, endpoint.hint || "Give the URL above to the system that calls this endpoint.")];
  const routes = (plugin && plugin.routes) || [];
  if (routes.length && plugin.name.includes("/")) {  // a Dify package: its own paths, below the URL
    parts.push(h("p", {}, "The package answers at these paths below the URL:"),
      h("ul", {}, routes.map((r) => h("li", {}, `${r.methods.join("/")} `, h("code", {}, endpoint.url + r.path)))));
  }
  for (const a of (plugin && plugin.actions) || []) {
    const inputs = Object.entries(a.options || {}).map(([name, help]) =>
      [name, h("input", { name, autocomplete: "off" }), help]);
    const flags = Object.entries(a.flags || {}).map(([name, help]) =>
      [name, h("input", { type: "checkbox", name }), help]);
    const out = h("div", {});
    parts.push(h("div", { class: "card" }, h("h3", {}, a.name), h("p", { class: "muted" }, a.help),
      inputs.map(([name, input, help]) => field(name, input, help)),
      flags.map(([name, box, help]) => h("label", { class: "inline" }, box, `${name}: ${help}`)),
      h("div", { class: "actions" }, actionButton(`Run ${a.name}`, async () => {
        const args = {};
        for (const [name, input] of inputs) if (input.value.trim()) args[name] = input.value.trim();
        for (const [name, box] of flags) args[name] = box.checked ? "true" : "false";
        const result = await action(endpoint, a.name, args);
        out.replaceChildren(h("pre", { class: "wrap" }, resultText(result)));
      }, { errorSlot: out })), out));
  }
  return h("div", {}, parts);
}

registerNextStep("slack", (endpoint) => {
  const out = h("div", {});
  return h("div", {},
    h("ol", { class: "steps" },
      h("li", {}, "Download the app manifest: it has this endpoint's URL filled in. ",
        actionButton("Download Slack manifest", async () => {
          const result = await action(endpoint, "manifest");
          const manifest = result.result;  // the data, not the words
          download(`slack-manifest-${endpoint.id}.json`, typeof manifest === "string" ? manifest : JSON.stringify(manifest, null, 2));
          toast("Manifest downloaded");
        }, { errorSlot: out })),
      h("li", {}, "Open ", h("a", { href: "https://api.slack.com/apps", target: "_blank", rel: "noopener noreferrer" },
        "api.slack.com/apps"), " → Create New App → From a manifest → pick your workspace → paste the file (JSON tab)."),
      h("li", {}, "Install the app to the workspace (Install App)."),
      h("li", {}, "Copy Basic Information → Signing Secret and OAuth & Permissions → Bot User OAuth Token (xoxb-) into ",
        h("a", { href: "#edit-settings" }, "this endpoint's settings"), " below."),
      h("li", {}, "Back in Slack, Event Subscriptions shows the Request URL as Verified; mention the bot in a channel or DM it.")),
    out);
});

registerNextStep("discord", (endpoint) => {
  const out = h("div", {});
  return h("div", {},
    h("ol", { class: "steps" },
      h("li", {}, "In the Discord Developer Portal → General Information, paste the Interactions Endpoint URL:",
        copyable("Interactions Endpoint URL", endpoint.url)),
      h("li", {}, "Set application_id, public_key and bot_token in ", h("a", { href: "#edit-settings" }, "the settings"), " below."),
      h("li", {}, "Register the slash commands: ", actionButton("Register commands", async () => {
        const result = await action(endpoint, "register-commands");
        out.replaceChildren(h("p", { class: "notice", role: "status" }, resultText(result)));
      }, { errorSlot: out }))),
    out);
});

registerNextStep("openai", (endpoint, plugin, created) => {
  const base = `${endpoint.url}/v1`;
  const keySlot = h("div", {});
  const snippet = (key) => `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}", api_key="${key}")\n` +
    `reply = client.chat.completions.create(model="${endpoint.apps[0] || "APP"}", ` +
    `messages=[{"role": "user", "content": "Hello"}])\nprint(reply.choices[0].message.content)`;
  const first = created && created.secrets && created.secrets.api_key;
  const code = h("pre", {}, snippet(first || "YOUR_KEY"));
  return h("div", {},
    copyable("Base URL", base),
    h("p", {}, first ? "The snippet below uses the key made with the endpoint (shown above, once). Make more keys here; each is shown once, only its hash is kept."
      : "Clients need an API key for this endpoint. It is shown once; only its hash is kept."),
    actionButton("Create an API key", async () => {
      const result = await action(endpoint, "add-key", { label: "console" });
      keySlot.replaceChildren(h("div", { class: "secret" },
        h("p", {}, "Copy the key now: it will not be shown again."), copyable("API key", result.result.key, { secret: true })));
      code.textContent = snippet(result.result.key);
    }, { errorSlot: keySlot }),
    keySlot, h("h3", {}, "Python (the openai SDK)"), code,
    h("button", { type: "button", class: "quiet small", onclick: () => copyText(code.textContent).then(() => toast("Snippet copied")) }, "Copy snippet"));
});

registerNextStep("webhook", (endpoint) => {
  const out = h("div", {});
  const query = h("input", { name: "query", value: "Hello from the console", autocomplete: "off" });
  const curl = [
    "# WEBHOOK_SECRET is the endpoint's whsec_ secret (shown once when it was created)",
    `URL='${endpoint.url}'`,
    `BODY='{"query": "Hello", "user": "curl"}'`,
    'ID="msg_$(date +%s%N)"; TS="$(date +%s)"',
    'KEY="$(printf %s "${WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -tx1 | tr -d \' \\n\')"',
    'SIG="$(printf %s "$ID.$TS.$BODY" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)"',
    'curl -sS "$URL" -H "content-type: application/json" \\',
    '  -H "webhook-id: $ID" -H "webhook-timestamp: $TS" -H "webhook-signature: v1,$SIG" \\',
    '  -d "$BODY"',
  ].join("\n");
  return h("div", {},
    h("p", {}, "Requests are signed per Standard Webhooks with the endpoint's secret. A signed request with curl:"),
    h("pre", {}, curl), copyButton("curl example", curl),
    field("Test question", query, "Sent as a signed request from the gateway itself, like the CLI's `webhook call`."),
    h("div", { class: "actions" }, actionButton("Send a test request", async () => {
      const result = await action(endpoint, "call", { query: query.value || "Hello" });
      const data = result.result || {};
      out.replaceChildren(result.ok
        ? h("div", { class: "notice", role: "status" }, h("p", {}, "Answer:"), h("pre", {}, String(data.answer ?? resultText(result))))
        : errorBox(`The test request failed: ${(data.error && data.error.message) || resultText(result)}`));
    }, { errorSlot: out })),
    out);
});

registerNextStep("telegram", (endpoint) => {
  const out = h("div", {});
  const state = h("div", { "aria-live": "polite" });
  const drop = h("input", { type: "checkbox", name: "drop-pending" });
  const hasToken = Boolean(endpoint.settings && endpoint.settings.bot_token);
  // getWebhookInfo in plain words; `ok` is true when the webhook points at this endpoint.
  const checkStatus = async () => {
    const result = await action(endpoint, "status");
    state.replaceChildren(h("div", { class: result.ok ? "notice" : "warning", role: "status" },
      h("p", {}, h("span", { class: `badge ${result.ok ? "ok" : "warn"}` }, result.ok ? "connected" : "not connected"),
        " setWebhook status, as Telegram reports it:"),
      h("pre", { class: "wrap" }, resultText(result))));
  };
  const panel = h("div", {},
    h("ol", { class: "steps" },
      h("li", {}, "In Telegram, talk to ", h("a", { href: "https://t.me/BotFather", target: "_blank", rel: "noopener noreferrer" }, "@BotFather"),
        ": /newbot (or /token for a bot you have), and copy the bot token."),
      h("li", {}, "Paste it as Bot token in ", h("a", { href: "#edit-settings" }, "this endpoint's settings"),
        " below and save. The secret token Telegram sends back with every update was made for you."),
      h("li", {}, "Connect the webhook: Telegram then sends the bot's messages to this endpoint's URL, and /ask, /reset and /start are registered. ",
        h("label", { class: "inline" }, drop, "Drop the updates Telegram queued meanwhile"),
        h("div", { class: "actions" },
          actionButton("Connect webhook", async () => {
            const result = await action(endpoint, "connect", { "drop-pending": drop.checked ? "true" : "false" });
            out.replaceChildren(h("p", { class: "notice lines", role: "status" }, resultText(result)));
            await checkStatus();
          }, { errorSlot: out }),
          actionButton("Check webhook status", checkStatus, { cls: "quiet", errorSlot: state }))),
      h("li", {}, "Message the bot in a private chat, or mention it in a group.")),
    out, state,
    hasToken ? null : h("p", { class: "muted" }, "No bot token yet: the webhook can be connected once it is set."));
  if (hasToken && canWrite()) checkStatus().catch((error) => state.replaceChildren(errorBox(error)));
  return panel;
});

// Lark / Feishu: the Request URL, the events and permissions to enable, and a credentials check.
const LARK_SCOPES = [
  ["im:message.p2p_msg:readonly", "messages sent to the bot"],
  ["im:message.group_at_msg:readonly", "group messages that @mention it"],
  ["im:message:send_as_bot", "its replies"],
  ["im:message", "updating and recalling them"],
  ["cardkit:card:write", "streaming cards (without it answers are patched card messages)"],
];

registerNextStep("lark", (endpoint) => {
  const out = h("div", { "aria-live": "polite" });
  const scopes = LARK_SCOPES.map(([scope]) => scope).join("\n");
  return h("div", {},
    h("ol", { class: "steps" },
      h("li", {}, "In the developer console (", h("a", { href: "https://open.feishu.cn/app", target: "_blank", rel: "noopener noreferrer" }, "Feishu"),
        " or ", h("a", { href: "https://open.larksuite.com/app", target: "_blank", rel: "noopener noreferrer" }, "Lark"),
        "), create a custom app and add the Bot capability. Copy the App ID and App Secret from Credentials & Basic Info, and ",
        "the Encrypt Key and Verification Token from Events & Callbacks → Encryption Strategy, into ",
        h("a", { href: "#edit-settings" }, "this endpoint's settings"), " below (domain: lark for open.larksuite.com)."),
      h("li", {}, "Check the credentials: the gateway fetches a tenant_access_token and the bot's info. ",
        h("div", { class: "actions" }, actionButton("Check credentials", async () => {
          const result = await action(endpoint, "check");
          out.replaceChildren(h("p", { class: "notice", role: "status" }, resultText(result)));
        }, { errorSlot: out })), out),
      h("li", {}, "Events & Callbacks → Event Configuration: send events to the developer's server, with this Request URL (Lark checks it at once):",
        copyable("Request URL", endpoint.url)),
      h("li", {}, "Add Events → Receive messages: ", h("code", {}, "im.message.receive_v1"), "."),
      h("li", {}, "Permissions & Scopes: add",
        h("ul", {}, LARK_SCOPES.map(([scope, why]) => h("li", {}, h("code", {}, scope), ` — ${why}`))),
        copyButton("the scopes", scopes)),
      h("li", {}, "Version Management & Release: create a version and publish it (scopes and events take effect only then). ",
        "Then open a chat with the bot, or @mention it in a group.")));
});
