/* Recurses with a large frame until the stack runs out: a stack overflow
 * that no CPython recursion guard can intercept (tests only). */
#include <string.h>

int
stack_hog(int depth)
{
    volatile char frame[4096];
    memset((char *)frame, depth & 0xff, sizeof frame);
    return stack_hog(depth + 1) + frame[depth % sizeof frame];
}
