// The official Node.js service SDK (npm azure-iothub), unmodified, against `bulkreg serve --tls`.
// Reads BULKREG_CONNECTION_STRING (HostName=127.0.0.1, the hub on port 443) and trusts the hub's
// CA through NODE_EXTRA_CA_CERTS. Prints one JSON line per step: {"step", "ok", "detail"}; exits 1
// if any step failed. Driven by tests/hub/test_node_sdk.py.
'use strict';

const assert = require('assert');
const { Registry } = require('azure-iothub');

const cs = process.env.BULKREG_CONNECTION_STRING;
const registry = Registry.fromConnectionString(cs);
const wrongKey = Registry.fromConnectionString(
  cs.replace(/SharedAccessKey=[^;]*/, 'SharedAccessKey=' + Buffer.alloc(32, 7).toString('base64')));
const prefix = 'node-' + process.pid + '-';
const id = (n) => prefix + n;

async function rejects(promise, name, status) {
  try {
    await promise;
  } catch (err) {
    const got = err.response ? err.response.statusCode : undefined;
    assert.strictEqual(err.constructor.name, name, `${err.constructor.name}: ${err.message}`);
    if (status !== undefined) assert.strictEqual(got, status);
    return err;
  }
  throw new Error(`expected ${name}, the call succeeded`);
}

const steps = [
  ['addDevices', async () => {
    const { responseBody } = await registry.addDevices([
      { deviceId: id('a') }, { deviceId: id('b'), status: 'disabled' }, { deviceId: id('c') }]);
    assert.strictEqual(responseBody.isSuccessful, true);
    assert.deepStrictEqual(responseBody.errors, []);
  }],
  ['get', async () => {
    const { responseBody: device } = await registry.get(id('b'));
    assert.strictEqual(device.deviceId, id('b'));
    assert.strictEqual(device.status, 'disabled');
    assert.ok(device.authentication.symmetricKey.primaryKey, 'keys were generated');
  }],
  ['updateDevices', async () => {
    const { responseBody } = await registry.updateDevices(
      [{ deviceId: id('a'), status: 'disabled' }], true);
    assert.strictEqual(responseBody.isSuccessful, true);
    const { responseBody: after } = await registry.get(id('a'));
    assert.strictEqual(after.status, 'disabled');
  }],
  ['updateDevices with the etag of get()', async () => {
    // Node's Device carries a lower-case `etag`, sent as is with importMode UpdateIfMatchETag
    const { responseBody: device } = await registry.get(id('a'));
    device.statusReason = 'checked';
    const { responseBody } = await registry.updateDevices([device], false);
    assert.strictEqual(responseBody.isSuccessful, true);
  }],
  ['updateDevices stale etag', async () => {
    const err = await rejects(registry.updateDevices(
      [{ deviceId: id('a'), status: 'enabled', etag: 'AAAAAAAAAAE=' }], false), 'ArgumentError', 400);
    assert.strictEqual(err.responseBody ? JSON.parse(err.responseBody).isSuccessful : false, false);
  }],
  ['addDevices duplicate', async () => {
    const err = await rejects(registry.addDevices([{ deviceId: id('a') }]), 'ArgumentError', 400);
    const body = JSON.parse(err.responseBody);
    assert.strictEqual(body.errors[0].errorCode, 'DeviceAlreadyExists');
  }],
  ['removeDevices', async () => {
    const { responseBody } = await registry.removeDevices([{ deviceId: id('c') }], true);
    assert.strictEqual(responseBody.isSuccessful, true);
    await rejects(registry.get(id('c')), 'DeviceNotFoundError', 404);
  }],
  ['create', async () => {
    const { responseBody: device } = await registry.create({ deviceId: id('s') });
    assert.strictEqual(device.deviceId, id('s'));
    assert.ok(device.etag);
  }],
  ['create duplicate', async () => {
    await rejects(registry.create({ deviceId: id('s') }), 'DeviceAlreadyExistsError', 409);
  }],
  ['update', async () => {
    const { responseBody: device } = await registry.update({ deviceId: id('s'), status: 'disabled' });
    assert.strictEqual(device.status, 'disabled');
  }],
  ['list', async () => {
    const { responseBody: devices } = await registry.list();
    const ids = devices.map((d) => d.deviceId).filter((d) => d.startsWith(prefix)).sort();
    assert.deepStrictEqual(ids, [id('a'), id('b'), id('s')]);
  }],
  ['getTwin', async () => {
    const { responseBody: twin } = await registry.getTwin(id('a'));
    assert.strictEqual(twin.deviceId, id('a'));
    assert.ok(twin.etag);
  }],
  ['updateTwin', async () => {
    const { responseBody: twin } = await registry.getTwin(id('a'));
    const { responseBody: patched } = await registry.updateTwin(
      id('a'), { tags: { site: 'north' }, properties: { desired: { interval: 30 } } }, twin.etag);
    assert.strictEqual(patched.tags.site, 'north');
    assert.strictEqual(patched.properties.desired.interval, 30);
  }],
  ['updateTwin stale etag', async () => {
    const { responseBody: twin } = await registry.getTwin(id('b'));
    await registry.updateTwin(id('b'), { tags: { v: 1 } }, twin.etag);
    await rejects(registry.updateTwin(id('b'), { tags: { v: 2 } }, twin.etag), 'InvalidEtagError', 412);
  }],
  ['wrong key', async () => {
    await rejects(wrongKey.get(id('a')), 'UnauthorizedError', 401);
  }],
  ['delete', async () => {
    await registry.delete(id('s'));
    await rejects(registry.get(id('s')), 'DeviceNotFoundError', 404);
  }],
  ['createQuery', async () => {
    const query = registry.createQuery("SELECT * FROM devices WHERE tags.site = 'north'", 1);
    const { result: twins } = await query.nextAsTwin();
    assert.deepStrictEqual(twins.map((t) => t.deviceId), [id('a')]);
    assert.strictEqual(query.hasMoreResults, false);
    const paged = registry.createQuery(
      `SELECT * FROM devices WHERE STARTSWITH(deviceId, '${prefix}') OR status = 'disabled'`, 1);
    const seen = [];
    do {  // nextAsTwin() carries the stored continuation token (next() with no argument does not)
      const { result } = await paged.nextAsTwin();
      seen.push(...result.map((t) => t.deviceId));
    } while (paged.hasMoreResults && seen.length < 1000);
    assert.deepStrictEqual(seen.filter((d) => d.startsWith(prefix)).sort(), [id('a'), id('b')]);
  }],
  ['getRegistryStatistics', async () => {
    const { responseBody: stats } = await registry.getRegistryStatistics();
    assert.ok(stats.totalDeviceCount >= 2);
    assert.ok(stats.disabledDeviceCount >= 2);
    assert.strictEqual(stats.enabledDeviceCount + stats.disabledDeviceCount, stats.totalDeviceCount);
  }],
  ['modules', async () => {
    await registry.addModule({ deviceId: id('a'), moduleId: 'm1' });
    const { responseBody: module } = await registry.getModule(id('a'), 'm1');
    assert.strictEqual(module.moduleId, 'm1');
    assert.ok(module.authentication.symmetricKey.primaryKey);
    const { responseBody: modules } = await registry.getModulesOnDevice(id('a'));
    assert.deepStrictEqual(modules.map((m) => m.moduleId), ['m1']);
    // the SDK maps errors by HTTP status: 409 is DeviceAlreadyExistsError, a 404 other than
    // DeviceNotFound a plain Error
    await rejects(registry.addModule({ deviceId: id('a'), moduleId: 'm1' }),
      'DeviceAlreadyExistsError', 409);
    await registry.removeModule(id('a'), 'm1');
    await rejects(registry.getModule(id('a'), 'm1'), 'Error', 404);
  }],
  ['module twins', async () => {
    await registry.addModule({ deviceId: id('a'), moduleId: 'm2' });
    const { responseBody: twin } = await registry.getModuleTwin(id('a'), 'm2');
    assert.strictEqual(twin.moduleId, 'm2');
    const { responseBody: patched } = await registry.updateModuleTwin(id('a'), 'm2',
      { tags: { role: 'filter' }, properties: { desired: { rate: 5 } } }, twin.etag);
    assert.strictEqual(patched.tags.role, 'filter');
    assert.strictEqual(patched.properties.desired.rate, 5);
    assert.notStrictEqual(patched.etag, twin.etag);
    await rejects(registry.updateModuleTwin(id('a'), 'm2', { tags: { role: 'x' } }, twin.etag),
      'InvalidEtagError', 412);  // the etag of before the patch
    const { responseBody: device } = await registry.getTwin(id('a'));
    assert.strictEqual(device.tags === undefined ? undefined : device.tags.role, undefined);
    await registry.removeModule(id('a'), 'm2');
  }],
];

(async () => {
  let failed = 0;
  for (const [step, run] of steps) {
    try {
      await Promise.race([run(), new Promise((_, reject) => setTimeout(
        () => reject(new Error('no answer within 30 s')), 30000).unref())]);
      console.log(JSON.stringify({ step, ok: true }));
    } catch (err) {
      failed += 1;
      console.log(JSON.stringify({ step, ok: false, detail: String(err && err.stack || err).slice(0, 600) }));
    }
  }
  process.exit(failed ? 1 : 0);
})();
