// Reads the text chunks of a PNG in the browser, so a Loom image dropped on the canvas restores the
// workflow it carries (the `workflow` chunk; `prompt` holds the API format).

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export function readPngText(buffer: ArrayBuffer): Record<string, string> {
  const bytes = new Uint8Array(buffer);
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) return {};
  const view = new DataView(buffer);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const out: Record<string, string> = {};
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "tEXt") {
      const sep = data.indexOf(0);
      if (sep > 0) out[latin1.decode(data.subarray(0, sep))] = latin1.decode(data.subarray(sep + 1));
    } else if (type === "iTXt") {
      const sep = data.indexOf(0);
      const compressed = data[sep + 1];
      let pos = sep + 3;
      pos = data.indexOf(0, pos) + 1; // language tag
      pos = data.indexOf(0, pos) + 1; // translated keyword
      if (sep > 0 && compressed === 0) out[latin1.decode(data.subarray(0, sep))] = utf8.decode(data.subarray(pos));
    } else if (type === "IEND") break;
    offset += 12 + length;
  }
  return out;
}
