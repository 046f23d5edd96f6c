/**
 * One `loupe loop run` as its own process, with the AWS control plane answered by the fake in
 * fake-aws.ts (aws-sdk-client-mock, state in a folder shared with the test). The test kills it
 * (FAKE_AWS_CRASH, or LOUPE_LOOP_CRASH from the runner) and starts it again to resume.
 * Usage: node dist/test/loop-aws/loop-child.js <home> <fake-aws dir> <region>
 * Prints the run report as one JSON line on stdout; logs go to stderr.
 */
import { createLogger } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';
import { loopHome, readLoopConfig } from '../../cloud/loop/config.js';
import { runLoopOnce, stderrEvents } from '../../cloud/loop/loop.js';
import { installFakeAws } from './fake-aws.js';

const [home, fakeDir, region] = process.argv.slice(2) as [string, string, string];
const fake = installFakeAws(fakeDir, { region, crash: process.env.FAKE_AWS_CRASH });
try {
  const h = loopHome(home);
  const report = await runLoopOnce({
    config: readLoopConfig(h.config),
    home: h,
    trigger: 'test',
    log: createLogger('loop', { stream: 'stderr' }),
    events: stderrEvents(),
  });
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (e) {
  process.stderr.write(`loop-child: ${errorMessage(e)}\n`);
  process.exitCode = 1;
} finally {
  fake.restore();
}
