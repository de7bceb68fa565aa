// Package secretref turns a rollout.SecretRef into the secret it names and
// checks a password against the rules of the CVM API generation that will
// receive it. The planner uses it to fail a plan before anything starts;
// workers use it again at call time, because an environment variable or a
// file can change between the two.
//
// Nothing here ever puts a secret into an error, a log or a return value
// other than Resolve's: errors name the reference and the rule broken.
package secretref
