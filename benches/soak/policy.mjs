// The session policy the soak runs the gateway with, and the rules that follow from it for
// judging the users' experience. One place, because the gateway's config, the users'
// behaviour and the report all depend on these numbers.

/** The provider's access and ID tokens live this long (s): refreshes happen all the time. */
export const TOKEN_TTL = 12;
/** `session.refresh_before_expiry` (s): each active session refreshes every 6-8 s. */
export const REFRESH_BEFORE = 4;
/** `session.idle_timeout` (s): short, so that users who stop working are seen to be logged out. */
export const IDLE = 30;
/** `session.absolute_timeout` (s): a few minutes, reached by some users within the soak. */
export const ABSOLUTE = 180;
/** `session.touch_interval` (s): the idle deadline may lag the last request by this much. */
export const TOUCH = 2;
/** `session.redis_timeout` (s): while Redis is paused, protected requests answer 503 after this. */
export const REDIS_TIMEOUT = 2;

/**
 * Timing slack (s) when judging whether a session could have ended by policy: the gateway
 * counts in whole Unix seconds and a request takes time, so a session is "below the absolute
 * timeout" only when it is younger than ABSOLUTE - SLACK, and "active within the idle
 * timeout" only when its last request is less than IDLE - TOUCH - SLACK ago.
 */
export const SLACK = 2;

/** A fault window ends this long (s) after the fault's recovery (the process is back). */
export const GRACE = 3;

/**
 * Why a session that just ended could have ended by policy, or null when it should still
 * be alive: `age` is the time since the login (s), `idleFor` since the user's last served
 * request (s).
 */
export function policyEnding({ age, idleFor }) {
  if (age >= ABSOLUTE - SLACK) return 'absolute';
  if (idleFor >= IDLE - TOUCH - SLACK) return 'idle';
  return null;
}
