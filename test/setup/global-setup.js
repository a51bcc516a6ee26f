import { createPgliteTemplate } from './pglite-template.js';
import { setup } from './temp-root.js';

export default function globalSetup() {
  setup();
  createPgliteTemplate(process.env.MEDIA_REPO_TEST_TMP_ROOT);
}
