// DOM for one panel. Every value from the network goes in as text, never as HTML.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value)
    else if (name === "dataset") Object.assign(node.dataset, value)
    else node.setAttribute(name, value === true ? "" : value)
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined))
  return node
}

const time = () => new Date().toLocaleTimeString([], { hour12: false })

const STATES = {
  "signed-out": "signed out",
  checking: "checking access…",
  live: "live",
  offline: "offline · local copy",
  ended: "access ended",
}

function taskRow(key, row, fresh) {
  const notes = "internal_notes" in row
    ? el("p", { class: "notes" }, el("span", { class: "lock" }, "internal_notes"), ` ${row.internal_notes ?? ""}`)
    : null
  return el(
    "li",
    { class: `row task${fresh ? " fresh" : ""}`, dataset: { shape: "tasks", key } },
    el("div", { class: "task-main" },
      el("span", { class: `status status-${row.status}` }, row.status ?? ""),
      el("span", { class: "title" }, row.title ?? ""),
      el("span", { class: "assignee" }, `→ ${row.assigned_to ?? "?"}`),
      el("span", { class: "id" }, `#${row.id}`),
    ),
    notes,
  )
}

const LABEL = {
  drafts: (row) => row.body,
  projects: (row) => row.name,
  documents: (row) => row.title,
  countries: (row) => `${row.name} (${row.code})`,
}

function plainRow(shape, key, row) {
  return el("li", { class: "row", dataset: { shape, key } }, String(LABEL[shape]?.(row) ?? JSON.stringify(row)))
}

export class PanelView {
  constructor(root, { user, person, people, shapes, handlers }) {
    this.root = root
    this.shapes = {}
    root.className = "panel"
    root.dataset.user = user
    const others = people.map((p) =>
      el("option", { value: p.user, selected: p.user === user }, `${p.user} · ${p.tenant} ${p.role}`),
    )
    this.stateBadge = el("span", { class: "state" })
    this.signButton = el("button", { type: "button", class: "ghost", onclick: () => handlers.toggleSession() })
    this.banner = el("div", { class: "banner", hidden: true })
    const colleagues = people.filter((p) => p.tenant === person.tenant)
    const assignable = person.role === "member" ? [person] : colleagues
    this.form = el(
      "form",
      { class: "add-task", onsubmit: (event) => { event.preventDefault(); handlers.addTask(new FormData(this.form)) } },
      el("input", { name: "title", placeholder: `New ${person.tenant} task…`, autocomplete: "off", required: true, maxlength: 120 }),
      el("select", { name: "assigned_to", title: "assigned to" }, assignable.map((p) => el("option", { value: p.user }, p.user))),
      el("button", { type: "submit" }, "Add task"),
    )
    this.formNote = el("p", { class: "form-note" })
    const cards = shapes.map(({ name, title, live }) => {
      const parts = {
        count: el("span", { class: "count" }),
        columns: el("p", { class: "columns" }),
        rows: el("ul", { class: "rows" }),
        wire: el("p", { class: "wire" }),
      }
      this.shapes[name] = parts
      parts.card = el(
        "article",
        { class: `shape shape-${name}`, dataset: { shape: name } },
        el("header", {}, el("h3", {}, title), el("span", { class: `tag ${live ? "live" : ""}` }, live ? "live" : "synced at start"), parts.count),
        parts.columns,
        parts.rows,
        parts.wire,
      )
      return parts.card
    })
    this.activity = el("ol", { class: "activity" })
    root.replaceChildren(
      el("header", { class: "panel-head" },
        el("div", { class: "identity" },
          el("span", { class: `avatar avatar-${user}` }, user[0].toUpperCase()),
          el("div", {}, el("strong", {}, user), el("span", { class: "meta" }, `${person.tenant} · ${person.role}`)),
        ),
        this.stateBadge,
        el("div", { class: "controls" },
          el("select", { class: "switch", title: "show another person here", onchange: (e) => handlers.switchTo(e.target.value) }, others),
          this.signButton,
        ),
      ),
      this.banner,
      el("div", { class: "writer" }, this.form, this.formNote),
      el("div", { class: "shapes" }, cards),
      el("details", { class: "log" }, el("summary", {}, "Activity: feed, refusals, writes"), this.activity),
    )
  }

  state(state, signedIn) {
    this.root.dataset.state = state
    this.stateBadge.textContent = STATES[state] ?? state
    this.stateBadge.className = `state state-${state}`
    this.signButton.textContent = signedIn ? "Sign out" : "Sign in"
    this.form.querySelector("button").disabled = state !== "live"
  }

  shape(name, shape, fresh = new Set()) {
    const parts = this.shapes[name]
    const rows = [...shape.rows.entries()].sort(([, a], [, b]) => (a.id ?? 0) - (b.id ?? 0))
    parts.rows.replaceChildren(
      ...rows.map(([key, row]) => (name === "tasks" ? taskRow(key, row, fresh.has(key)) : plainRow(name, key, row))),
    )
    parts.count.textContent = String(rows.length)
    if (shape.upToDate) parts.card.dataset.synced = "true"
    const columns = shape.columns ?? Object.keys(rows[0]?.[1] ?? {})
    parts.columns.textContent = columns.length ? `columns: ${columns.join(", ")}` : ""
  }

  wire(name, wire) {
    const bits = [
      wire.status && `HTTP ${wire.status}`,
      wire.handle && `handle ${wire.handle}`,
      wire.offset && `offset ${wire.offset}`,
      wire.requestId && `x-request-id ${wire.requestId.slice(0, 8)}`,
    ].filter(Boolean)
    this.shapes[name].wire.textContent = bits.join(" · ")
    for (const [key, value] of Object.entries(wire)) {
      if (value) this.shapes[name].wire.dataset[key] = value
    }
  }

  shapeError(name, text) {
    this.shapes[name].wire.textContent = text
    this.shapes[name].wire.classList.add("error")
  }

  clear() {
    for (const parts of Object.values(this.shapes)) {
      parts.rows.replaceChildren()
      parts.count.textContent = ""
      parts.columns.textContent = ""
      parts.wire.textContent = ""
      parts.wire.className = "wire"
      delete parts.card.dataset.synced
    }
  }

  show(banner) {
    this.banner.hidden = !banner
    if (!banner) return
    this.banner.className = `banner banner-${banner.kind}`
    this.banner.replaceChildren(
      el("strong", { class: "code" }, banner.title),
      el("p", { class: "message" }, banner.message),
      ...(banner.details ?? []).map((d) => el("p", { class: "detail" }, d)),
      ...(banner.actions ?? []).map((a) => el("button", { type: "button", onclick: a.run }, a.label)),
    )
  }

  note(text) {
    this.formNote.textContent = text
  }

  log(text) {
    this.activity.prepend(el("li", {}, el("time", {}, time()), ` ${text}`))
    while (this.activity.children.length > 40) this.activity.lastChild.remove()
  }
}
