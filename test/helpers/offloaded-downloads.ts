// What the proxy-offload suites (nginx, lighttpd) check of every download the proxy answers.
import { rawRequest, type RawResponse } from './raw-http.js';

/** Uploads through `base` (the service or the proxy in front); the media's `<server>/<id>`. */
export async function uploadMedia(base: string, as: Record<string, string>, body: Buffer, name: string, type: string): Promise<string> {
  const res = await rawRequest(`${base}/_matrix/media/v3/upload?filename=${name}`, { method: 'POST', headers: { ...as, 'content-type': type }, body });
  expect(res.status).toBe(200);
  return String(res.json().content_uri).replace('mxc://', '');
}

/** The service's media headers made it across the proxy's redirect, and its offload header did not leak. */
export function expectMediaHeaders(res: RawResponse, type: string, disposition: RegExp): void {
  expect(res.headers['content-type']).toBe(type);
  expect(res.headers['content-disposition']).toMatch(disposition);
  expect(res.headers['content-security-policy']).toMatch(/^sandbox; default-src 'none'/);
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['cross-origin-resource-policy']).toBe('cross-origin');
  expect(res.headers['x-accel-redirect']).toBeUndefined();
  expect(res.headers['x-sendfile']).toBeUndefined();
}
