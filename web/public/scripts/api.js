// Compatibility entry: `import { api } from "../../scripts/api.js"` (server events and fetch helpers).
export const api = window.loom.compat.api;
