// The official Node.js service SDK (npm azure-iothub), unmodified, running import and export jobs
// on `bulkreg serve --tls` (port 443) with Azurite as the blob store. Reads
// BULKREG_CONNECTION_STRING and BULKREG_CONTAINERS (JSON: name -> container SAS URI, made by the
// test); trusts the hub's CA through NODE_EXTRA_CA_CERTS. Blobs are uploaded and read with
// Node's own fetch over the Blob REST API, as a user without a storage SDK would. Prints one
// JSON line per step: {"step", "ok", "detail"}. Driven by tests/jobs/test_jobs_node_sdk.py.
'use strict';

const assert = require('assert');
const { Registry } = require('azure-iothub');

const registry = Registry.fromConnectionString(process.env.BULKREG_CONNECTION_STRING);
const containers = JSON.parse(process.env.BULKREG_CONTAINERS);
const finished = ['completed', 'failed', 'cancelled'];

function blobUrl(container, name) {
  const [base, sas] = containers[container].split('?');
  return `${base}/${name}?${sas}`;
}

async function putBlob(container, name, text) {
  const answer = await fetch(blobUrl(container, name), {
    method: 'PUT', body: text, headers: { 'x-ms-blob-type': 'BlockBlob' } });
  assert.strictEqual(answer.status, 201, `upload: ${answer.status}`);
}

async function getBlob(container, name) {
  const answer = await fetch(blobUrl(container, name));
  assert.strictEqual(answer.status, 200, `download ${name}: ${answer.status}`);
  return answer.text();
}

async function finish(jobId) {
  for (let i = 0; i < 1200; i += 1) {  // at most a minute: only keeps a broken hub from hanging
    const job = await registry.getJob(jobId);
    if (finished.includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${jobId} never ended`);
}

const lines = (objects) => objects.map((o) => (typeof o === 'string' ? o : JSON.stringify(o)) + '\n').join('');
const state = {};

const steps = [
  ['upload', async () => {
    await putBlob('input', 'devices.txt', lines([
      { id: 'node-1', tags: { site: 'south' } },
      { id: 'node-2', importMode: 'Create', status: 'Disabled' },  // other casings: accepted
      { id: 'node-3', importMode: 'update' },                      // absent: 404001
      { id: 'node-1', importMode: 'delete' },                      // defined twice: 400011
      '{"id": "node-4", "authentication": {"type": "SELF_SIGNED"}}', // 400012
      { id: 'node-5', properties: { desired: { interval: 30 } } },
    ]));
  }],
  ['importDevicesFromBlob', async () => {
    const job = await registry.importDevicesFromBlob(containers.input, containers.output);
    assert.ok(job.jobId);
    assert.ok(['enqueued', 'running'].includes(job.status), job.status);
    assert.strictEqual(job.type, 'import');
    state.importId = job.jobId;
  }],
  ['getJob until completed', async () => {
    const job = await finish(state.importId);
    assert.strictEqual(job.status, 'completed', job.failureReason);
    assert.strictEqual(job.progress, 100);
    assert.strictEqual(job.failureReason, null);
  }],
  ['read importErrors.log', async () => {
    const log = (await getBlob('output', 'importErrors.log')).trim().split('\n').map(JSON.parse);
    assert.deepStrictEqual(log.map((e) => [e.deviceId, e.errorCode]), [
      ['node-3', 404001], ['node-1', 400011], [undefined, 400012]]);
    assert.ok(log[2].errorStatus.startsWith('Invalid device format in line: {"id": "node-4"'));
    const { responseBody: twin } = await registry.getTwin('node-5');
    assert.strictEqual(twin.properties.desired.interval, 30);
  }],
  ['listJobs', async () => {
    const { responseBody: jobs } = await registry.listJobs();
    assert.deepStrictEqual(jobs.map((j) => j.jobId), [state.importId]);
  }],
  ['exportDevicesToBlob', async () => {
    const job = await registry.exportDevicesToBlob(containers.output, false);
    const done = await finish(job.jobId);
    assert.strictEqual(done.status, 'completed', done.failureReason);
    state.exported = await getBlob('output', 'devices.txt');
    const devices = state.exported.trim().split('\n').map(JSON.parse);
    assert.deepStrictEqual(devices.map((d) => d.id), ['node-1', 'node-2', 'node-5']);
    assert.strictEqual(devices[1].status, 'disabled');
    assert.ok(devices[0].authentication.symmetricKey.primaryKey);
  }],
  ['round trip', async () => {
    // empty the hub, import what was exported, export again: the same devices, keys and twins
    await registry.removeDevices(['node-1', 'node-2', 'node-5'].map((deviceId) => ({ deviceId })), true);
    await putBlob('copy', 'devices.txt', state.exported);
    const job = await registry.importDevicesFromBlob(containers.copy, containers.copy);
    assert.strictEqual((await finish(job.jobId)).status, 'completed');
    assert.strictEqual(await getBlob('copy', 'importErrors.log'), '');
    const again = await registry.exportDevicesToBlob(containers.copy, false);
    assert.strictEqual((await finish(again.jobId)).status, 'completed');
    const strip = (text) => text.trim().split('\n').map(JSON.parse).map(
      ({ eTag, twinETag, ...rest }) => rest);
    assert.deepStrictEqual(strip(await getBlob('copy', 'devices.txt')), strip(state.exported));
  }],
  ['exportDevicesToBlob excluding keys', async () => {
    const job = await registry.exportDevicesToBlob(containers.copy, true);
    assert.strictEqual(job.excludeKeysInExport, true);
    assert.strictEqual((await finish(job.jobId)).status, 'completed');
    const devices = (await getBlob('copy', 'devices.txt')).trim().split('\n').map(JSON.parse);
    assert.deepStrictEqual(devices[0].authentication.symmetricKey,
      { primaryKey: null, secondaryKey: null });
  }],
  ['cancelJob', async () => {
    // the test holds any import after 100 lines: this one stays running until cancelled
    await putBlob('big', 'devices.txt', lines(Array.from({ length: 300 }, (_, i) => ({ id: `big-${i}` }))));
    const job = await registry.importDevicesFromBlob(containers.big, containers.big);
    try {  // one active job per hub: the SDK maps the 403 JobQuotaExceeded to TooManyDevicesError
      await registry.exportDevicesToBlob(containers.big, false);
      throw new Error('a second job was accepted');
    } catch (err) {
      assert.strictEqual(err.constructor.name, 'TooManyDevicesError', String(err));
      assert.strictEqual(err.response.statusCode, 403);
      assert.ok(String(err.responseBody).includes('JobQuotaExceeded'));
    }
    await registry.cancelJob(job.jobId);
    const ended = await finish(job.jobId);
    assert.strictEqual(ended.status, 'cancelled');
    // cancelled before its first batch or while held: either way the reason says what was applied
    assert.ok(/^Cancelled\. (No line was applied|Lines 1-(50|100) of devices.txt were applied)/
      .test(ended.failureReason), ended.failureReason);
  }],
];

(async () => {
  let failed = 0;
  for (const [step, run] of steps) {
    try {
      await Promise.race([run(), new Promise((_, reject) => setTimeout(
        () => reject(new Error('no answer within 60 s')), 60000).unref())]);
      console.log(JSON.stringify({ step, ok: true }));
    } catch (err) {
      failed += 1;
      console.log(JSON.stringify({ step, ok: false, detail: String(err && err.stack || err).slice(0, 600) }));
    }
  }
  process.exit(failed ? 1 : 0);
})();
