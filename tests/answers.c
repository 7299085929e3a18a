/* answers.c -- cmocka assertions on stashd's answers; see answers.h. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "answers.h"
#include "harness.h"

/* Parse an answer line; fails the test if it is not a JSON object. */
json_t *
parse_answer(const char *line)
{
	json_error_t err;
	json_t	    *j;

	assert_non_null(line);
	j = json_loads(line, 0, &err);
	if (j == NULL)
		fail_msg("answer is not JSON: %s (%s)", line, err.text);
	assert_true(json_is_object(j));
	return j;
}

/* Send one request, parse its answer; the caller decrefs. */
json_t *
ask(int fd, const char *request)
{
	char   *line = raw_roundtrip(fd, request);
	json_t *j;

	if (line == NULL)
		fail_msg("no answer to %s", request);
	j = parse_answer(line);
	free(line);
	return j;
}

/* Assert the answer is ok. */
void
assert_ok(json_t *j)
{
	if (!json_is_true(json_object_get(j, "ok"))) {
		char *s = json_dumps(j, 0);

		fail_msg("expected ok, got %s", s);
	}
}

/* Assert the answer is the error code. */
void
assert_error(json_t *j, const char *code)
{
	json_t	   *e = json_object_get(j, "error");
	const char *c;

	if (!json_is_false(json_object_get(j, "ok"))) {
		char *s = json_dumps(j, 0);

		fail_msg("expected error %s, got %s", code, s);
	}
	assert_true(json_is_object(e));
	c = json_string_value(json_object_get(e, "code"));
	assert_non_null(c);
	if (strcmp(c, code) != 0)
		fail_msg("expected error %s, got %s (%s)", code, c,
		    json_string_value(json_object_get(e, "message")));
	assert_true(json_is_string(json_object_get(e, "message")));
}

/* Ask and check the error code in one step. */
void
ask_error(int fd, const char *request, const char *code)
{
	json_t *j = ask(fd, request);

	assert_error(j, code);
	json_decref(j);
}
