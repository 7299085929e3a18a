/*
 * answers.h -- cmocka assertions on stashd's answers, shared by the
 * integration tests (test_server, test_durable).
 */
#ifndef STASH_TESTS_ANSWERS_H
#define STASH_TESTS_ANSWERS_H

#include <jansson.h>

/* Parse an answer line; fails the test unless it is a JSON object. */
json_t *parse_answer(const char *line);
/* Send one request on fd, parse its answer; the caller decrefs. */
json_t *ask(int fd, const char *request);
/* Assert the answer is ok. */
void assert_ok(json_t *j);
/* Assert the answer is the error code, with a message. */
void assert_error(json_t *j, const char *code);
/* Ask and check the error code in one step. */
void ask_error(int fd, const char *request, const char *code);

#endif /* STASH_TESTS_ANSWERS_H */
