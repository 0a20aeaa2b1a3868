from queue_gate.main import main

main()
