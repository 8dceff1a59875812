/* main.c -- the roomd program: the library's server with no hooks. */
#include "roomd.h"

int main(int argc, char **argv)
{
    return roomd_main(argc, argv);
}
