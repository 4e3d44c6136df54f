// A front-end extension: every .js file under the pack's WEB_DIRECTORY is listed by GET /extensions, served
// under /extensions/example_pack/ and imported by the canvas as an ES module when it starts.
const loom = window.loom;

loom?.registerExtension({
  name: "loom.example_pack",
  // Called for every node placed on the canvas: tint the example pack's nodes so they are easy to spot.
  nodeCreated(node) {
    if (node.comfyClass?.startsWith("Example") || node.type?.startsWith("Example")) {
      node.color = "#2a4d3a";
      node.bgcolor = "#335c46";
    }
  },
});
