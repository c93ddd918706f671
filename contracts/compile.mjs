#!/usr/bin/env node
// Compile contracts/src/*.sol with the pinned solcjs (npm solc 0.8.37) and write one artifact per
// deployable contract: contracts/artifacts/<Name>.json = {contractName, abi, bytecode, deployedBytecode}.
// Settings that make the output portable and reproducible: optimizer on (200 runs), evmVersion prague
// (py-evm cannot run the default osaka), the IR pipeline (the task and auction functions need it for their
// stack, and it packs storage access tighter), no metadata hash in the bytecode, sorted keys.
// Usage: node contracts/compile.mjs [--out DIR]
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const here = path.dirname(fileURLToPath(import.meta.url));
const srcDir = path.join(here, "src");
const outIndex = process.argv.indexOf("--out");
const outDir = outIndex > 0 ? path.resolve(process.argv[outIndex + 1]) : path.join(here, "artifacts");
const DEPLOYABLE = [
  "AgentRegistry", "TaskManager", "BidAuction", "IncentiveEngine", "TaskMarketplace", "MessageHub", "ActionLogger",
];

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 100000 },
    viaIR: true,
    evmVersion: "prague",
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

function findImports(importPath) {
  const candidate = path.join(srcDir, importPath);
  return fs.existsSync(candidate) ? { contents: fs.readFileSync(candidate, "utf8") } : { error: "not found" };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const problems = output.errors || [];
for (const p of problems) console.error(p.formattedMessage || p.message);
if (problems.some((p) => p.severity === "error")) process.exit(1);

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

fs.mkdirSync(outDir, { recursive: true });
for (const name of DEPLOYABLE) {
  const file = `${name}.sol`;
  const compiled = output.contracts[file] && output.contracts[file][name];
  if (!compiled) {
    console.error(`contract ${name} not found in ${file}`);
    process.exit(1);
  }
  const artifact = sortKeys({
    contractName: name,
    abi: compiled.abi,
    bytecode: "0x" + compiled.evm.bytecode.object,
    deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
  });
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
}
console.log(`compiled ${DEPLOYABLE.length} contracts with solc ${solc.version()} into ${outDir}`);
