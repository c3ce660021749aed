// Parses AsyncAPI documents with the official parser (@asyncapi/parser, pinned in package-lock.json)
// and prints {file: [diagnostic, ...]} as JSON, each diagnostic {code, message, path, severity}
// with the parser's severities: 0 error, 1 warning, 2 information, 3 hint.
// Usage: node check.mjs FILE...
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check.mjs FILE...");
  process.exit(2);
}
const parser = new Parser();
const report = {};
for (const file of files) {
  const { diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
  report[file] = diagnostics.map((d) => ({
    code: String(d.code),
    message: d.message,
    path: d.path.map(String),
    severity: d.severity,
  }));
}
process.stdout.write(JSON.stringify(report) + "\n");
