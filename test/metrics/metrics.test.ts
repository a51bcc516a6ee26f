// /metrics on its own listener, scraped and parsed around real traffic: each counter moves by exactly what
// the traffic did; labels stay bounded; every metric the Grafana dashboard queries has data.
import { readFileSync } from 'node:fs';
import type { RunningService } from '../../src/service.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { parsePrometheusText, total, type Sample } from '../helpers/prometheus-text.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

let whoami: StandInHomeserver;
let service: RunningService;

beforeAll(async () => {
  whoami = await startStandInHomeserver({ tok: { userId: '@alice:a.example' }, quota: { userId: '@quota:a.example' } });
  service = await startTestService({
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    rateLimits: { enabled: true, families: { config: { perIp: { perSecond: 0.001, burstCount: 1 } } } },
    homeservers: [
      { name: 'a.example', clientApi: whoami.url, quotas: { users: [{ glob: '@quota:*', maxFiles: 1 }] } },
      { name: 'b.example', clientApi: whoami.url },
    ],
  });
});

afterAll(async () => {
  await service?.close();
  await whoami?.close();
});

async function scrape(): Promise<Sample[]> {
  const res = await fetch(service.metricsUrl!);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parsePrometheusText(await res.text());
}

const client = (path: string, init: { method?: string; token?: string; body?: Buffer; ip?: string } = {}) =>
  rawRequest(`${service.url}${path}`, {
    method: init.method ?? 'GET',
    headers: { Host: 'a.example', Authorization: `Bearer ${init.token ?? 'tok'}`, 'Content-Type': 'application/octet-stream', ...(init.ip ? { 'X-Forwarded-For': init.ip } : {}) },
    body: init.body,
  });

test('the metrics listener is separate, and serves only GET /metrics', async () => {
  expect(service.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  expect(new URL(service.metricsUrl!).port).not.toBe(new URL(service.url).port);
  expect((await rawRequest(`${service.url}/metrics`)).status).toBe(404);
  expect((await rawRequest(service.metricsUrl!.replace('/metrics', '/other'))).status).toBe(404);
});

test('counters move by exactly what the traffic did', async () => {
  const before = await scrape();
  const bodies = [patternBytes(1000, 1), patternBytes(2000, 2), patternBytes(3000, 3)];
  const ids: string[] = [];
  for (const body of bodies) {
    const res = await client('/_matrix/media/v3/upload', { method: 'POST', body });
    expect(res.status).toBe(200);
    ids.push(String(res.json().content_uri).split('/').pop()!);
  }
  for (let i = 0; i < 2; i++) expect((await client(`/_matrix/client/v1/media/download/a.example/${ids[0]}`)).status).toBe(200);
  expect((await client('/_matrix/client/v1/media/download/a.example/unknownMedia')).status).toBe(404);
  expect((await client('/_matrix/media/v3/upload', { method: 'POST', token: 'quota', body: Buffer.from('one') })).status).toBe(200);
  expect((await client('/_matrix/media/v3/upload', { method: 'POST', token: 'quota', body: Buffer.from('two') })).status).toBe(400);
  expect((await client('/_matrix/client/v1/media/config', { ip: '203.0.113.5' })).status).toBe(200);
  expect((await client('/_matrix/client/v1/media/config', { ip: '203.0.113.5' })).status).toBe(429);
  const after = await scrape();
  const delta = (name: string, labels: Record<string, string> = {}) => total(after, name, labels) - total(before, name, labels);
  const a = { homeserver: 'a.example' };

  expect(delta('media_repo_http_requests_total', { ...a, family: 'upload', status: '200' })).toBe(4);
  expect(delta('media_repo_http_requests_total', { ...a, family: 'upload', status: '400' })).toBe(1);
  expect(delta('media_repo_http_requests_total', { ...a, family: 'download', status: '200' })).toBe(2);
  expect(delta('media_repo_http_requests_total', { ...a, family: 'download', status: '404' })).toBe(1);
  expect(delta('media_repo_http_requests_total', { ...a, family: 'config', status: '429' })).toBe(1);
  expect(delta('media_repo_http_request_duration_seconds_count', { ...a, family: 'download' })).toBe(3);
  expect(delta('media_repo_uploads_total', a)).toBe(4);
  expect(delta('media_repo_upload_bytes_total', a)).toBe(6003);
  expect(delta('media_repo_http_received_bytes_total', { ...a, family: 'upload' })).toBeGreaterThanOrEqual(6006);
  expect(delta('media_repo_http_sent_bytes_total', { ...a, family: 'download' })).toBeGreaterThanOrEqual(2000);
  expect(delta('media_repo_quota_refusals_total', { ...a, limit: 'maxFiles', scope: 'user' })).toBe(1);
  expect(delta('media_repo_rate_limit_refusals_total', { ...a, family: 'config', scope: 'ip' })).toBe(1);
  // The first download reads the row from the database, the second from memory; the unknown ID misses.
  expect(delta('media_repo_cache_lookups_total', { cache: 'local_media_records', result: 'hit' })).toBe(1);
  expect(delta('media_repo_cache_lookups_total', { cache: 'local_media_records', result: 'miss' })).toBe(2);
  // Nine token checks (the rate-limited request is refused before its token is looked at), two tokens: two misses.
  expect(delta('media_repo_cache_lookups_total', { cache: 'tokens', result: 'miss' })).toBe(2);
  expect(delta('media_repo_cache_lookups_total', { cache: 'tokens', result: 'hit' })).toBe(7);
  expect(delta('media_repo_datastore_operations_total', { datastore: 'default', operation: 'write', outcome: 'ok' })).toBe(4);
  expect(delta('media_repo_datastore_operations_total', { datastore: 'default', operation: 'read', outcome: 'ok' })).toBe(2);
  expect(delta('media_repo_http_requests_total', { homeserver: 'b.example' })).toBe(0);
});

test('process, event loop and pool metrics are there; no label holds a media or user ID', async () => {
  const samples = await scrape();
  for (const name of ['media_repo_process_cpu_seconds_total', 'media_repo_nodejs_eventloop_lag_seconds', 'media_repo_process_resident_memory_bytes']) {
    expect(samples.some((s) => s.name === name)).toBe(true);
  }
  expect(samples.filter((s) => s.name === 'media_repo_db_pool_connections').map((s) => s.labels.state).sort()).toEqual(['free', 'pending', 'used']);
  const text = JSON.stringify(samples.map((s) => s.labels));
  expect(text).not.toMatch(/@alice|unknownMedia|a\.example\/[A-Za-z0-9_-]{10,}/);
});

test('every metric the Grafana dashboard queries has data from this running instance', async () => {
  const dashboard = JSON.parse(readFileSync('contrib/grafana-dashboard.json', 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
  expect(exprs.length).toBeGreaterThan(10);
  const samples = await scrape();
  const present = new Set(samples.map((s) => s.name));
  const used = new Set(exprs.flatMap((e) => e.match(/media_repo_[a-z0-9_]+/g) ?? []));
  for (const name of used) expect({ name, present: present.has(name) }).toEqual({ name, present: true });
});
