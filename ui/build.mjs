// Builds ui/dist: the pages from src/ and uPlot from node_modules (installed by `npm ci`).
// No bundler: the pages are plain ES modules that both Chromium and WebKitGTK load as they are.
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const uplot = join(here, 'node_modules', 'uplot', 'dist');
if (!existsSync(uplot)) {
  console.error('ui/node_modules is missing: run `npm ci --prefix ui` first');
  process.exit(1);
}
rmSync(dist, { recursive: true, force: true });
cpSync(join(here, 'src'), dist, { recursive: true });
mkdirSync(join(dist, 'vendor'), { recursive: true });
cpSync(join(uplot, 'uPlot.esm.js'), join(dist, 'vendor', 'uPlot.esm.js'));
cpSync(join(uplot, 'uPlot.min.css'), join(dist, 'vendor', 'uPlot.min.css'));
console.log(`built ${dist}`);
