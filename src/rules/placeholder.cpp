// stage rules
