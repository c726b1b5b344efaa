/* queue.c: see queue.h. */
#include "queue.h"
#include "../core/array.h"

#include <stdlib.h>

static bool before(const struct hr__qitem *a, const struct hr__qitem *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

int hr__queue_push(struct hr__queue *q, hr_time_t time, void *ev)
{
    struct hr__qitem *v = hr_array_grow(q->items, &q->cap, q->n + 1, sizeof(*v), 256);
    if (v == NULL) {
        return HR_ENOMEM;
    }
    q->items = v;
    struct hr__qitem it = {time, q->next_seq++, ev};
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&it, &q->items[parent])) {
            break;
        }
        q->items[i] = q->items[parent];
        i = parent;
    }
    q->items[i] = it;
    return 0;
}

const struct hr__qitem *hr__queue_peek(const struct hr__queue *q)
{
    return q->n == 0 ? NULL : &q->items[0];
}

bool hr__queue_pop(struct hr__queue *q, struct hr__qitem *out)
{
    if (q->n == 0) {
        return false;
    }
    *out = q->items[0];
    struct hr__qitem last = q->items[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) {
            break;
        }
        if (c + 1 < q->n && before(&q->items[c + 1], &q->items[c])) {
            c++;
        }
        if (!before(&q->items[c], &last)) {
            break;
        }
        q->items[i] = q->items[c];
        i = c;
    }
    if (q->n > 0) {
        q->items[i] = last;
    }
    return true;
}

void hr__queue_free(struct hr__queue *q)
{
    free(q->items);
    q->items = NULL;
    q->n = q->cap = 0;
}
