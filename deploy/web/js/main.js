// The page: two people side by side (?users=alice,bob), each in a panel of their own, and the
// admin view. Which way in (bearer token or cookie) depends on the origin that served the page.
import { Panel } from "./panel.js"
import { AdminView } from "./admin.js"
import { el } from "./view.js"

const config = await (await fetch("/api/config")).json()
const clock = { lastAction: null }
const params = new URLSearchParams(location.search)
const known = new Set(config.people.map((p) => p.user))
const users = (params.get("users") ?? "alice,bob").split(",").filter((u) => known.has(u)).slice(0, 2)

const gatewayOrigin = config.mode === "bearer" ? new URL(config.gateway).origin : location.origin
document.querySelector("#way-in").replaceChildren(
  config.mode === "bearer"
    ? el("span", {}, "Bearer token, cross-origin: this page is ", el("code", {}, location.origin), ", the gateway ", el("code", {}, gatewayOrigin), " (CORS).")
    : el("span", {}, "Same-origin cookie: the gateway is proxied at ", el("code", {}, `${location.origin}/as/USER/v1/*`), "; the token is in an HttpOnly cookie."),
  " ",
  el("a", { href: config.other + location.search }, config.mode === "bearer" ? "Try the cookie way in →" : "Try the bearer way in →"),
)

const panels = document.querySelector("#panels")
const open = []
function place(index, user) {
  open[index]?.stop()
  const root = el("section")
  const panel = new Panel(root, {
    config,
    user,
    clock,
    onSwitch: (other) => {
      users[index] = other
      history.replaceState(null, "", `?users=${users.join(",")}`)
      place(index, other)
    },
  })
  if (panels.children[index]) panels.children[index].replaceWith(root)
  else panels.append(root)
  open[index] = panel
  panel.open()
}
users.forEach((user, index) => place(index, user))

const admin = new AdminView(document.querySelector("#admin"), clock)
admin.load()
window.demo = { config, panels: open, admin }
