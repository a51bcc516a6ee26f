import { choosePgliteTemplatePath } from './pglite-template.js';
import { setup } from './temp-root.js';

export default function globalSetup() {
  setup();
  choosePgliteTemplatePath(process.env.MEDIA_REPO_TEST_TMP_ROOT);
}
