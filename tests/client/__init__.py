"""The real `@electric-sql/client` (Node.js, pinned in package.json) against a running gateway."""
