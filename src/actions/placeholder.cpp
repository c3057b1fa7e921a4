// stage actions
