// Validates an AsyncAPI document with the official parser (@asyncapi/parser), resolving the
// relative $refs to the JSON Schemas next to it. Usage:
//   node validate_asyncapi.cjs <node_modules dir holding @asyncapi/parser> <asyncapi.yaml>
// Prints the diagnostics as JSON on stdout; exits 0 only when the document parsed without errors.
"use strict";
const path = require("path");

async function main() {
  const [modules, document] = process.argv.slice(2);
  if (!modules || !document) {
    console.error("usage: node validate_asyncapi.cjs <node_modules> <asyncapi.yaml>");
    process.exit(2);
  }
  const { Parser, fromFile, DiagnosticSeverity } = require(path.join(modules, "@asyncapi", "parser"));
  const parser = new Parser();
  const { document: parsed, diagnostics } = await fromFile(parser, path.resolve(document)).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const report = {
    valid: Boolean(parsed) && errors.length === 0,
    version: parsed ? parsed.version() : null,
    channels: parsed ? parsed.channels().all().map((c) => c.address()) : [],
    messages: parsed ? parsed.components().messages().all().map((m) => m.id()) : [],
    diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
  };
  console.log(JSON.stringify(report));
  process.exit(report.valid ? 0 : 1);
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(3);
});
