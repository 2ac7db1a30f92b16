int cmd_hw(int argc, char **argv) { (void)argc; (void)argv; return 0; }
