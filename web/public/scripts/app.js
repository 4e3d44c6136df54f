// Compatibility entry for node-pack front-end extensions written for the ecosystem's canvas:
// `import { app } from "../../scripts/app.js"` resolves here and gets Loom's extension-facing app object.
export const app = window.loom.compat.app;
