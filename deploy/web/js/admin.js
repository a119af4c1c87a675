// The admin view: ask the demo server, which holds GATEWAY_ADMIN_TOKEN, to publish a revocation
// through the gateway's admin API. The page never holds the admin token.
import { el } from "./view.js"
import { postJson } from "./transport.js"

export class AdminView {
  constructor(root, clock) {
    this.root = root
    this.clock = clock
    this.result = el("p", { class: "admin-result" })
  }

  async load() {
    const response = await fetch("/api/admin/directory")
    this.render(await response.json())
  }

  async act(action, target, label) {
    this.clock.lastAction = { at: performance.now(), label, action }
    try {
      const { event, directory } = await postJson(`/api/admin/${action}`, target)
      this.result.textContent = event
        ? `Published ${event.event.type} through the gateway's admin API: event ${event.id}.`
        : `${label}: the app issues tokens to ${target.user} again (sign in again).`
      this.render(directory)
    } catch (error) {
      this.result.textContent = `${label} failed: ${error.message}`
    }
  }

  render({ people, tenants }) {
    const button = (action, target, label, kind) =>
      el("button", { type: "button", class: kind, dataset: { action, target: target.user ?? target.tenant }, onclick: () => this.act(action, target, label) }, label)
    this.root.replaceChildren(
      el("header", {}, el("h2", {}, "Admin"), el("p", {}, "The demo server publishes revocations through the gateway's admin API (GATEWAY_ADMIN_TOKEN stays on the server).")),
      el("div", { class: "admin-grid" },
        el("div", { class: "admin-group" }, el("h3", {}, "Memberships"),
          people.map((p) => el("div", { class: `admin-row${p.member ? "" : " off"}` },
            el("span", {}, `${p.user} in ${p.tenant} (${p.role})`),
            p.member
              ? button("revoke", { user: p.user }, `Revoke ${p.user}`, "danger")
              : button("restore", { user: p.user }, `Restore ${p.user}`, "ghost"),
          )),
        ),
        el("div", { class: "admin-group" }, el("h3", {}, "Tenants"),
          tenants.map((t) => el("div", { class: `admin-row${t.suspended ? " off" : ""}` },
            el("span", {}, `${t.tenant}${t.suspended ? " (suspended)" : ""}`),
            t.suspended
              ? button("reinstate", { tenant: t.tenant }, `Reinstate ${t.tenant}`, "ghost")
              : button("suspend", { tenant: t.tenant }, `Suspend ${t.tenant}`, "danger"),
          )),
        ),
      ),
      this.result,
    )
  }
}
